//! `stationkeeper pki`: `init` creates the development CA and server certificate
//! in the state directory without starting the server; `gateway` asks the running
//! server for a new credential generation and writes the files a gateway needs
//! (`cups.uri`, `cups.trust`, `cups.crt`/`cups.key` or a token `cups.key`, or
//! the `tc.*` set) into a folder, ready to copy onto the gateway.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::json;

use super::{write_gateway_files, ApiClient, ApiOpts, CliResult};
use crate::config::{host_name, Config};

#[derive(Args)]
pub struct PkiArgs {
    #[command(subcommand)]
    command: PkiCommand,
    #[command(flatten)]
    api: ApiOpts,
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Create (or show) the development CA and server certificate in STATE_DIR/pki.
    Init,
    /// Issue credentials for one gateway and write its files into --out.
    Gateway {
        /// Gateway Id or EUI.
        gateway: String,
        /// CUPS or LNS.
        #[arg(long, default_value = "CUPS")]
        service: String,
        /// ClientCertificate or Token.
        #[arg(long, default_value = "ClientCertificate")]
        kind: String,
        /// Folder to write the files into.
        #[arg(long)]
        out: PathBuf,
    },
}

pub async fn run(a: PkiArgs) -> CliResult {
    match a.command {
        PkiCommand::Init => {
            let cfg = Config::load(a.api.config.as_deref(), std::env::vars())
                .map_err(|e| e.to_string())?;
            let names = crate::tls::dev_server_names(&cfg, &host_name());
            let dir = cfg.state_dir.join("pki");
            crate::pki::DevPki::load_or_create(&dir, &names).map_err(|e| e.to_string())?;
            println!("CA certificate      {}", dir.join("ca.crt").display());
            println!("CA key (keep safe)  {}", dir.join("ca.key").display());
            println!(
                "server certificate  {} for {}",
                dir.join("server.crt").display(),
                names.join(", ")
            );
            Ok(())
        }
        PkiCommand::Gateway {
            gateway,
            service,
            kind,
            out,
        } => {
            let client = ApiClient::from_opts(&a.api)?;
            let answer = client
                .call(
                    Method::POST,
                    &format!("/wireless-gateways/{gateway}/credentials"),
                    Some(json!({"Service": service, "Kind": kind})),
                )
                .await?;
            let written = write_gateway_files(&out, &answer["Files"])?;
            println!(
                "{} {} generation {} for gateway {gateway}:",
                answer["Service"].as_str().unwrap_or(""),
                answer["Kind"].as_str().unwrap_or(""),
                answer["Generation"]
            );
            for p in written {
                println!("  {}", p.display());
            }
            println!("copy these into the gateway's station home directory (next to station.conf)");
            Ok(())
        }
    }
}
