//! `stationkeeper access-keys ...`: SigV4 credentials for AWS clients (boto3, the
//! aws CLI, the SDKs). `create` prints `AccessKeyId` and `SecretAccessKey` once;
//! the server never shows the secret again.

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::json;

use super::{print_json, ApiClient, ApiOpts, CliResult};

#[derive(Args)]
pub struct AccessKeysArgs {
    #[command(subcommand)]
    command: KeyCommand,
    #[command(flatten)]
    api: ApiOpts,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create a key; prints {"AccessKeyId","SecretAccessKey"} (shown this once).
    Create {
        #[arg(long)]
        name: String,
    },
    /// List keys (never their secrets).
    List,
    /// Refuse requests signed with this key (AccessKeyId or name).
    Disable { key: String },
    /// Accept this key again.
    Enable { key: String },
    /// Delete a key for good.
    Delete { key: String },
}

pub async fn run(a: AccessKeysArgs) -> CliResult {
    let c = ApiClient::from_opts(&a.api)?;
    match a.command {
        KeyCommand::Create { name } => {
            let v = c
                .call(Method::POST, "/access-keys", Some(json!({"Name": name})))
                .await?;
            print_json(&json!({
                "AccessKeyId": v["AccessKeyId"],
                "SecretAccessKey": v["SecretAccessKey"],
            }));
            eprintln!("The secret is shown only now; keep it (e.g. `aws configure`).");
        }
        KeyCommand::List => print_json(&c.list_all("/access-keys", "AccessKeys").await?),
        KeyCommand::Disable { key } => status(&c, &key, "Inactive").await?,
        KeyCommand::Enable { key } => status(&c, &key, "Active").await?,
        KeyCommand::Delete { key } => {
            c.call(Method::DELETE, &format!("/access-keys/{key}"), None)
                .await?;
        }
    }
    Ok(())
}

async fn status(c: &ApiClient, key: &str, s: &str) -> CliResult {
    c.call(
        Method::PATCH,
        &format!("/access-keys/{key}"),
        Some(json!({"Status": s})),
    )
    .await?;
    Ok(())
}
