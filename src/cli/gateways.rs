//! `stationkeeper gateways ...`: the wireless-gateway calls of the operator API,
//! printing the API's JSON answers.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::json;

use super::{write_gateway_files, ApiClient, ApiOpts, CliResult};

#[derive(Args)]
pub struct GatewaysArgs {
    #[command(subcommand)]
    command: GwCommand,
    #[command(flatten)]
    api: ApiOpts,
}

#[derive(Subcommand)]
enum GwCommand {
    /// Register a gateway; with --out, also issue CUPS credentials into that folder.
    Create {
        #[arg(long)]
        eui: String,
        /// EU868, US915, AU915, AS923-1..4, KR920, IN865, CN470, EU433.
        #[arg(long, default_value = "EU868")]
        region: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// US915/AU915 sub-bands, e.g. --sub-bands 2
        #[arg(long, value_delimiter = ',')]
        sub_bands: Vec<u8>,
        /// Write the gateway's CUPS files here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// ClientCertificate or Token (with --out).
        #[arg(long, default_value = "ClientCertificate")]
        kind: String,
    },
    /// List gateways.
    List,
    /// Show one gateway (Id or EUI).
    Get { gateway: String },
    /// Change name or description.
    Update {
        gateway: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a gateway.
    Delete { gateway: String },
    /// What the gateway reported on its last CUPS poll.
    Firmware { gateway: String },
    /// Last contact and connection status.
    Stats { gateway: String },
    /// Override the CUPS/LNS URIs this gateway is told.
    CupsConfig {
        gateway: String,
        #[arg(long)]
        cups_uri: Option<String>,
        #[arg(long)]
        tc_uri: Option<String>,
    },
    /// Credential generations and whether the gateway confirmed them.
    Credentials { gateway: String },
    /// Delete a credential generation that is not current, e.g. the backup
    /// (first) CUPS generation. Station's cups-bak.* may hold it: see the README.
    RetireCredential {
        gateway: String,
        /// The generation number `gateways credentials` shows.
        generation: u32,
        /// CUPS or LNS.
        #[arg(long, default_value = "CUPS")]
        service: String,
    },
}

use super::print_json as print;

pub async fn run(a: GatewaysArgs) -> CliResult {
    let c = ApiClient::from_opts(&a.api)?;
    let gw = |g: &str| format!("/wireless-gateways/{g}");
    match a.command {
        GwCommand::Create {
            eui,
            region,
            name,
            description,
            sub_bands,
            out,
            kind,
        } => {
            let mut lorawan = json!({"GatewayEui": eui, "RfRegion": region});
            if !sub_bands.is_empty() {
                lorawan["SubBands"] = json!(sub_bands);
            }
            let mut body = json!({"LoRaWAN": lorawan});
            if let Some(n) = name {
                body["Name"] = json!(n);
            }
            if let Some(d) = description {
                body["Description"] = json!(d);
            }
            let created = c
                .call(Method::POST, "/wireless-gateways", Some(body))
                .await?;
            print(&created);
            if let Some(out) = out {
                let id = created["Id"].as_str().unwrap_or_default();
                let issued = c
                    .call(
                        Method::POST,
                        &format!("{}/credentials", gw(id)),
                        Some(json!({"Service": "CUPS", "Kind": kind})),
                    )
                    .await
                    .map_err(|e| {
                        format!("gateway {id} was created, but its credentials were not: {e}; issue them with `stationkeeper pki gateway {id} --kind Token --out {}`", out.display())
                    })?;
                for p in write_gateway_files(&out, &issued["Files"])? {
                    println!("wrote {}", p.display());
                }
            }
        }
        GwCommand::List => print(
            &c.list_all("/wireless-gateways", "WirelessGatewayList")
                .await?,
        ),
        GwCommand::Get { gateway } => print(&c.call(Method::GET, &gw(&gateway), None).await?),
        GwCommand::Update {
            gateway,
            name,
            description,
        } => {
            let body = json!({"Name": name, "Description": description});
            c.call(Method::PATCH, &gw(&gateway), Some(body)).await?;
        }
        GwCommand::Delete { gateway } => {
            c.call(Method::DELETE, &gw(&gateway), None).await?;
        }
        GwCommand::Firmware { gateway } => print(
            &c.call(
                Method::GET,
                &format!("{}/firmware-information", gw(&gateway)),
                None,
            )
            .await?,
        ),
        GwCommand::Stats { gateway } => print(
            &c.call(
                Method::GET,
                &format!("{}/gateway-statistics", gw(&gateway)),
                None,
            )
            .await?,
        ),
        GwCommand::CupsConfig {
            gateway,
            cups_uri,
            tc_uri,
        } => {
            let body = json!({"CupsUri": cups_uri, "TcUri": tc_uri});
            c.call(
                Method::PUT,
                &format!("{}/cups-config", gw(&gateway)),
                Some(body),
            )
            .await?;
        }
        GwCommand::Credentials { gateway } => print(
            &c.call(Method::GET, &format!("{}/credentials", gw(&gateway)), None)
                .await?,
        ),
        GwCommand::RetireCredential {
            gateway,
            generation,
            service,
        } => {
            c.call(
                Method::DELETE,
                &format!(
                    "{}/credentials/{generation}?service={service}",
                    gw(&gateway)
                ),
                None,
            )
            .await?;
            println!("{service} generation {generation} of {gateway} deleted; its token or certificate no longer works");
        }
    }
    Ok(())
}
