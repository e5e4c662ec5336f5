//! `stationkeeper device-profiles`, `service-profiles` and `devices`: AWS's JSON
//! with `--cli-input-json file://...`, lists that follow every page, a device's
//! statistics, a downlink (`devices send`), and its event log
//! (`devices events <Id> [--follow]`, one JSON event a line).

use std::time::Duration;

use base64::Engine;
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::json;

use super::fuota::read_input_json;
use super::{print_json, ApiClient, ApiOpts, CliResult};

#[derive(Args)]
pub struct ProfilesArgs {
    #[command(subcommand)]
    command: ProfilesCommand,
    #[command(flatten)]
    api: ApiOpts,
}

#[derive(Subcommand)]
enum ProfilesCommand {
    /// Create from AWS's CreateDeviceProfile / CreateServiceProfile JSON.
    Create {
        /// `file://profile.json` (or a plain path).
        #[arg(long)]
        cli_input_json: String,
    },
    Get {
        id: String,
    },
    List,
    /// Delete a profile no device uses.
    Delete {
        id: String,
    },
}

#[derive(Args)]
pub struct DevicesArgs {
    #[command(subcommand)]
    command: DevicesCommand,
    #[command(flatten)]
    api: ApiOpts,
}

#[derive(Subcommand)]
enum DevicesCommand {
    /// Create from AWS's CreateWirelessDevice JSON (OtaaV1_0_x or AbpV1_0_x).
    Create {
        #[arg(long)]
        cli_input_json: String,
    },
    /// A device by Id or DevEui (keys are never shown).
    Get {
        id: String,
    },
    List {
        #[arg(long)]
        destination_name: Option<String>,
        #[arg(long)]
        device_profile_id: Option<String>,
    },
    Delete {
        id: String,
    },
    /// The last uplink: time, gateways with RSSI/SNR, counters.
    Statistics {
        id: String,
    },
    /// Queue a downlink: sent after the next uplink (class A) or at once (class C).
    Send {
        id: String,
        /// The payload as hex (e.g. 0102ff).
        #[arg(long)]
        hex: String,
        #[arg(long, default_value_t = 1)]
        fport: u8,
        /// Ask the device to acknowledge it.
        #[arg(long)]
        confirmed: bool,
    },
    /// The device's events (join, up, ack, txack, status, log), one JSON object a line.
    Events {
        id: String,
        /// Keep printing new events as they come.
        #[arg(long)]
        follow: bool,
    },
}

pub async fn device_profiles(a: ProfilesArgs) -> CliResult {
    profiles(a, "/device-profiles", "DeviceProfileList").await
}

pub async fn service_profiles(a: ProfilesArgs) -> CliResult {
    profiles(a, "/service-profiles", "ServiceProfileList").await
}

async fn profiles(a: ProfilesArgs, base: &str, list_key: &str) -> CliResult {
    let c = ApiClient::from_opts(&a.api)?;
    let v = match a.command {
        ProfilesCommand::Create { cli_input_json } => {
            c.call(Method::POST, base, Some(read_input_json(&cli_input_json)?))
                .await?
        }
        ProfilesCommand::Get { id } => c.call(Method::GET, &format!("{base}/{id}"), None).await?,
        ProfilesCommand::List => c.list_all(base, list_key).await?,
        ProfilesCommand::Delete { id } => {
            c.call(Method::DELETE, &format!("{base}/{id}"), None)
                .await?
        }
    };
    print_json(&v);
    Ok(())
}

pub async fn devices(a: DevicesArgs) -> CliResult {
    let c = ApiClient::from_opts(&a.api)?;
    let dev = |id: &str| format!("/wireless-devices/{id}");
    let v = match a.command {
        DevicesCommand::Create { cli_input_json } => {
            c.call(
                Method::POST,
                "/wireless-devices",
                Some(read_input_json(&cli_input_json)?),
            )
            .await?
        }
        DevicesCommand::Get { id } => c.call(Method::GET, &dev(&id), None).await?,
        DevicesCommand::List {
            destination_name,
            device_profile_id,
        } => {
            let mut q = Vec::new();
            if let Some(d) = destination_name {
                q.push(format!("destinationName={d}"));
            }
            if let Some(p) = device_profile_id {
                q.push(format!("deviceProfileId={p}"));
            }
            let path = if q.is_empty() {
                "/wireless-devices".to_owned()
            } else {
                format!("/wireless-devices?{}", q.join("&"))
            };
            c.list_all(&path, "WirelessDeviceList").await?
        }
        DevicesCommand::Delete { id } => c.call(Method::DELETE, &dev(&id), None).await?,
        DevicesCommand::Statistics { id } => {
            c.call(Method::GET, &format!("{}/statistics", dev(&id)), None)
                .await?
        }
        DevicesCommand::Send {
            id,
            hex,
            fport,
            confirmed,
        } => {
            let data = hex::decode(hex.trim()).map_err(|_| format!("--hex {hex:?} is not hex"))?;
            let body = json!({
                "TransmitMode": u8::from(confirmed),
                "PayloadData": base64::engine::general_purpose::STANDARD.encode(data),
                "WirelessMetadata": {"LoRaWAN": {"FPort": fport}},
            });
            c.call(Method::POST, &format!("{}/data", dev(&id)), Some(body))
                .await?
        }
        DevicesCommand::Events { id, follow } => return events(&c, &dev(&id), follow).await,
    };
    print_json(&v);
    Ok(())
}

/// Prints every event, then (with `follow`) polls for new ones once a second.
async fn events(c: &ApiClient, path: &str, follow: bool) -> CliResult {
    let mut token = String::from("0");
    loop {
        let page = c
            .call(
                Method::GET,
                &format!("{path}/events?nextToken={token}&maxResults=250"),
                None,
            )
            .await?;
        let list = page["Events"].as_array().cloned().unwrap_or_default();
        for e in &list {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        }
        token = page["NextToken"].as_str().unwrap_or(&token).to_owned();
        if list.len() < 250 {
            if !follow {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
