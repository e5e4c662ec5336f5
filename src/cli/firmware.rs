//! `stationkeeper blobs`, `task-definitions` and `tasks`: upload update files
//! (streamed, with progress), create task definitions from AWS's `input.json`
//! (`--cli-input-json file://input.json`, as the AWS CLI takes it), and follow or
//! assign a gateway's update task.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

use super::{print_json, ApiClient, ApiOpts, CliResult};

#[derive(Args)]
pub struct BlobsArgs {
    #[command(subcommand)]
    command: BlobsCommand,
    #[command(flatten)]
    api: ApiOpts,
}

#[derive(Subcommand)]
enum BlobsCommand {
    /// Upload a file (update.bin, FUOTA image); prints its Id.
    Upload {
        file: PathBuf,
    },
    List,
    Delete {
        id: String,
    },
}

#[derive(Args)]
pub struct DefinitionsArgs {
    #[command(subcommand)]
    command: DefinitionsCommand,
    #[command(flatten)]
    api: ApiOpts,
}

#[derive(Subcommand)]
enum DefinitionsCommand {
    /// Create from AWS's CreateWirelessGatewayTaskDefinition JSON.
    Create {
        /// `file://input.json` (or a plain path).
        #[arg(long)]
        cli_input_json: String,
        /// Upload this update file first and use it as Update.UpdateDataSource.
        #[arg(long)]
        update_file: Option<PathBuf>,
    },
    List,
    Get {
        id: String,
    },
    Delete {
        id: String,
    },
}

#[derive(Args)]
pub struct TasksArgs {
    #[command(subcommand)]
    command: TasksCommand,
    #[command(flatten)]
    api: ApiOpts,
}

#[derive(Subcommand)]
enum TasksCommand {
    /// Assign a task definition to a gateway by hand.
    Create {
        gateway: String,
        #[arg(long)]
        definition: String,
    },
    /// The gateway's current (or last) task, with its attempts.
    Get { gateway: String },
    /// Delete the gateway's task; delivery stops at once.
    Delete { gateway: String },
}

/// Uploads with a progress line on a terminal; returns the blob Id.
pub(super) async fn upload(c: &ApiClient, file: &Path) -> Result<String, String> {
    let total = std::fs::metadata(file)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .len();
    let tty = std::io::stderr().is_terminal();
    let name = file.display().to_string();
    let mut last = 0u64;
    let answer = c
        .upload("/blobs", file, move |sent| {
            let pct = (sent * 100).checked_div(total).unwrap_or(100);
            if tty && (pct != last || sent == total) {
                last = pct;
                eprint!("\ruploading {name}: {pct:>3}% ({sent} of {total} bytes)");
                let _ = std::io::stderr().flush();
            }
        })
        .await?;
    if tty {
        eprintln!();
    }
    let id = answer["Id"]
        .as_str()
        .ok_or("the server answered without an Id")?
        .to_string();
    eprintln!(
        "uploaded {} ({} bytes) as {id}",
        file.display(),
        answer["Size"]
    );
    Ok(id)
}

pub async fn blobs(a: BlobsArgs) -> CliResult {
    let c = ApiClient::from_opts(&a.api)?;
    match a.command {
        BlobsCommand::Upload { file } => println!("{}", upload(&c, &file).await?),
        BlobsCommand::List => print_json(&c.list_all("/blobs", "Blobs").await?),
        BlobsCommand::Delete { id } => {
            c.call(Method::DELETE, &format!("/blobs/{id}"), None)
                .await?;
        }
    }
    Ok(())
}

pub async fn definitions(a: DefinitionsArgs) -> CliResult {
    let c = ApiClient::from_opts(&a.api)?;
    let path = "/wireless-gateway-task-definitions";
    match a.command {
        DefinitionsCommand::Create {
            cli_input_json,
            update_file,
        } => {
            let file = cli_input_json
                .strip_prefix("file://")
                .unwrap_or(&cli_input_json);
            let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
            let mut body: Value =
                serde_json::from_str(&text).map_err(|e| format!("{file}: {e}"))?;
            if let Some(update) = update_file {
                let id = upload(&c, &update).await?;
                body["Update"]["UpdateDataSource"] = json!(id);
            }
            // Without --update-file, an s3:// source names an object put with
            // the S3-compatible API (`aws s3 cp`); the server resolves it.
            print_json(&c.call(Method::POST, path, Some(body)).await?);
        }
        DefinitionsCommand::List => print_json(&c.list_all(path, "TaskDefinitions").await?),
        DefinitionsCommand::Get { id } => {
            print_json(&c.call(Method::GET, &format!("{path}/{id}"), None).await?)
        }
        DefinitionsCommand::Delete { id } => {
            c.call(Method::DELETE, &format!("{path}/{id}"), None)
                .await?;
        }
    }
    Ok(())
}

pub async fn tasks(a: TasksArgs) -> CliResult {
    let c = ApiClient::from_opts(&a.api)?;
    let path = |g: &str| format!("/wireless-gateways/{g}/tasks");
    match a.command {
        TasksCommand::Create {
            gateway,
            definition,
        } => print_json(
            &c.call(
                Method::POST,
                &path(&gateway),
                Some(json!({"WirelessGatewayTaskDefinitionId": definition})),
            )
            .await?,
        ),
        TasksCommand::Get { gateway } => {
            print_json(&c.call(Method::GET, &path(&gateway), None).await?)
        }
        TasksCommand::Delete { gateway } => {
            c.call(Method::DELETE, &path(&gateway), None).await?;
        }
    }
    Ok(())
}
