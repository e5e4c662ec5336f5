//! The `stationkeeper` command line. `serve` runs the server; every other
//! subcommand is a client of the operator API (one file per subcommand family),
//! except `pki init`, `keys generate` and `sign`, which work on local files, and
//! `openapi`, which prints the API's document from the code.

mod access_keys;
mod audit;
mod campaigns;
mod client;
mod devices;
mod firmware;
mod fuota;
mod gateways;
mod keys;
mod pki;
mod refusals;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use client::ApiClient;

#[derive(Parser)]
#[command(
    name = "stationkeeper",
    version,
    about = "Fleet update server for LoRa Basics Station gateways"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run all faces until SIGTERM/SIGINT.
    Serve(serve::ServeArgs),
    /// Create the CA and server certificate, or credentials for one gateway.
    Pki(pki::PkiArgs),
    /// Register and inspect gateways through the operator API.
    #[command(alias = "gateway")]
    Gateways(gateways::GatewaysArgs),
    /// Firmware signing keys: generate a pair, register or list public keys.
    Keys(keys::KeysArgs),
    /// Sign an update file: prints UpdateSignature and SigKeyCrc.
    Sign(keys::SignArgs),
    /// Upload, list and delete blobs (update files, FUOTA images).
    Blobs(firmware::BlobsArgs),
    /// Gateway task definitions (AWS input.json accepted as it is).
    #[command(alias = "task-definition")]
    TaskDefinitions(firmware::DefinitionsArgs),
    /// A gateway's update task: assign, follow, delete.
    #[command(alias = "task")]
    Tasks(firmware::TasksArgs),
    /// Multicast groups for FUOTA: address, keys, session, carrying gateways.
    #[command(alias = "multicast-group")]
    MulticastGroups(fuota::GroupsArgs),
    /// FUOTA tasks: an end-device image sent through a multicast group.
    #[command(alias = "fuota-task")]
    FuotaTasks(fuota::FuotaArgs),
    #[command(alias = "device-profile")]
    DeviceProfiles(devices::ProfilesArgs),
    #[command(alias = "service-profile")]
    ServiceProfiles(devices::ProfilesArgs),
    #[command(alias = "device")]
    Devices(devices::DevicesArgs),
    /// SigV4 access keys for AWS clients: create (secret shown once), list,
    /// disable, enable, delete.
    #[command(alias = "access-key")]
    AccessKeys(access_keys::AccessKeysArgs),
    /// Rollout campaigns: waves, gate, rates, windows; watch them live.
    #[command(alias = "campaign")]
    Campaigns(campaigns::CampaignsArgs),
    /// The fleet at a glance: versions, online, open tasks, campaigns, attention.
    Fleet(campaigns::FleetArgs),
    /// The audit log of operator calls: who changed what, when.
    Audit(audit::AuditArgs),
    /// A gateway's last CUPS refusals: when, from where, why.
    Refusals(refusals::RefusalsArgs),
    /// Router ids the server does not know that polled CUPS lately.
    UnknownRouters(refusals::UnknownArgs),
    /// Print the operator API's OpenAPI 3 document (no server needed).
    Openapi(OpenapiArgs),
}

#[derive(Args)]
struct OpenapiArgs {
    /// Print the book's API reference page (docs/src/api-reference.md) instead
    /// of the JSON document.
    #[arg(long)]
    markdown: bool,
}

/// The document as `GET /openapi.json` serves it, or the book's page made from it.
fn openapi(a: OpenapiArgs) -> CliResult {
    let doc = serde_json::to_value(crate::api::openapi::document())
        .map_err(|e| format!("serialising the OpenAPI document: {e}"))?;
    if a.markdown {
        print!("{}", crate::api::openapi::markdown(&doc));
    } else {
        print_json(&doc);
    }
    Ok(())
}

/// How a client subcommand reaches the operator API.
#[derive(Args, Clone, Debug)]
pub struct ApiOpts {
    /// Config file of the server (to find its API address, token and state dir).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// API base URL, e.g. http://127.0.0.1:7000 (default: from the config).
    #[arg(long, global = true)]
    pub api: Option<String>,
    /// API token (default: --token-file, the config's tokens, or STATE_DIR/api-token).
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// File holding the API token.
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// CA certificate to trust when the API is served over HTTPS
    /// (default: STATE_DIR/pki/ca.crt).
    #[arg(long, global = true)]
    pub ca: Option<PathBuf>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Logs go to stderr (journald keeps both streams); colour only on a terminal.
    // A closed stderr (a pipe whose reader went away) must not stop the server:
    // the subscriber's own report of a failed write uses `eprintln!`, which
    // panics there, in whatever task logged — so that report is off.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .log_internal_errors(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // Store calls serialise on one SQLite connection, so more blocking threads
    // than this only add context switches under load.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(16)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Serve(a) => serve::run(a).await,
            Command::Pki(a) => pki::run(a).await,
            Command::Gateways(a) => gateways::run(a).await,
            Command::Keys(a) => keys::run(a).await,
            Command::Sign(a) => keys::sign(a).await,
            Command::Blobs(a) => firmware::blobs(a).await,
            Command::TaskDefinitions(a) => firmware::definitions(a).await,
            Command::Tasks(a) => firmware::tasks(a).await,
            Command::MulticastGroups(a) => fuota::groups(a).await,
            Command::FuotaTasks(a) => fuota::tasks(a).await,
            Command::DeviceProfiles(a) => devices::device_profiles(a).await,
            Command::ServiceProfiles(a) => devices::service_profiles(a).await,
            Command::Devices(a) => devices::devices(a).await,
            Command::AccessKeys(a) => access_keys::run(a).await,
            Command::Campaigns(a) => campaigns::run(a).await,
            Command::Fleet(a) => campaigns::fleet(a).await,
            Command::Audit(a) => audit::run(a).await,
            Command::Refusals(a) => refusals::refusals(a).await,
            Command::UnknownRouters(a) => refusals::unknown(a).await,
            Command::Openapi(a) => openapi(a),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints an API answer as indented JSON (nothing for an empty answer).
pub fn print_json(v: &serde_json::Value) {
    if !v.is_null() {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    }
}

/// Errors a subcommand reports to the operator, as one line.
pub type CliResult = Result<(), String>;

/// Writes the gateway files of a credential answer into `dir`.
pub fn write_gateway_files(
    dir: &std::path::Path,
    files: &serde_json::Value,
) -> Result<Vec<PathBuf>, String> {
    crate::fsutil::create_private_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = vec![];
    let obj = files.as_object().ok_or("answer has no Files")?;
    for (name, content) in obj {
        if name.contains('/') || name.starts_with('.') {
            return Err(format!("refusing odd file name {name:?}"));
        }
        let path = dir.join(name);
        let mode = if name.ends_with(".key") { 0o600 } else { 0o644 };
        let text = content.as_str().ok_or("file content is not text")?;
        crate::fsutil::write_atomic(&path, text.as_bytes(), mode)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
