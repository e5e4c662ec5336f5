//! `stationkeeper campaigns`: create and preview from a JSON body
//! (`--cli-input-json file://campaign.json`, as the AWS CLI takes input), read,
//! list, page through a campaign's gateways, the controls, and `watch`: live
//! progress bars per wave (indicatif) until the campaign finishes.

use std::time::Duration;

use clap::{Args, Subcommand};
use hyper::Method;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::{print_json, ApiClient, ApiOpts, CliResult};

#[derive(Args)]
pub struct CampaignsArgs {
    #[command(subcommand)]
    command: CampaignsCommand,
    #[command(flatten)]
    api: ApiOpts,
}

#[derive(Subcommand)]
enum CampaignsCommand {
    /// Create a campaign (it starts at once, or at its StartTime).
    Create {
        /// `file://campaign.json` (or a plain path).
        #[arg(long)]
        cli_input_json: String,
    },
    /// What a body would do: eligible gateways, the others by reason, wave sizes, duration.
    Preview {
        #[arg(long)]
        cli_input_json: String,
    },
    Get {
        id: String,
    },
    List,
    /// The campaign's gateways, optionally of one status (e.g. FAILED).
    Gateways {
        id: String,
        #[arg(long)]
        status: Option<String>,
    },
    /// No new task starts; open tasks run on.
    Pause {
        id: String,
    },
    /// Runs again; the open wave's gate is waived.
    Resume {
        id: String,
    },
    /// Open tasks are deleted; nothing more is sent.
    Cancel {
        id: String,
    },
    /// A new wave of the gateways that ended Failed.
    RetryFailed {
        id: String,
    },
    /// Deletes a campaign that is not Running or Paused (cancel it first).
    Delete {
        id: String,
    },
    /// Live progress bars per wave until the campaign finishes (Ctrl-C to leave).
    Watch {
        id: String,
        /// Seconds between reads.
        #[arg(long, default_value_t = 2)]
        every: u64,
    },
}

fn read_body(arg: &str) -> Result<Value, String> {
    let file = arg.strip_prefix("file://").unwrap_or(arg);
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{file}: {e}"))
}

pub async fn run(a: CampaignsArgs) -> CliResult {
    let c = ApiClient::from_opts(&a.api)?;
    let one = |id: &str, action: &str| format!("/campaigns/{id}/{action}");
    match a.command {
        CampaignsCommand::Create { cli_input_json } => print_json(
            &c.call(
                Method::POST,
                "/campaigns",
                Some(read_body(&cli_input_json)?),
            )
            .await?,
        ),
        CampaignsCommand::Preview { cli_input_json } => print_json(
            &c.call(
                Method::POST,
                "/campaigns/preview",
                Some(read_body(&cli_input_json)?),
            )
            .await?,
        ),
        CampaignsCommand::Get { id } => print_json(
            &c.call(Method::GET, &format!("/campaigns/{id}"), None)
                .await?,
        ),
        CampaignsCommand::List => print_json(&c.list_all("/campaigns", "Campaigns").await?),
        CampaignsCommand::Gateways { id, status } => {
            let path = match status {
                Some(s) => format!("/campaigns/{id}/gateways?status={s}"),
                None => format!("/campaigns/{id}/gateways"),
            };
            print_json(&c.list_all(&path, "Gateways").await?)
        }
        CampaignsCommand::Pause { id } => {
            print_json(&c.call(Method::POST, &one(&id, "pause"), None).await?)
        }
        CampaignsCommand::Resume { id } => {
            print_json(&c.call(Method::POST, &one(&id, "resume"), None).await?)
        }
        CampaignsCommand::Cancel { id } => {
            print_json(&c.call(Method::POST, &one(&id, "cancel"), None).await?)
        }
        CampaignsCommand::RetryFailed { id } => print_json(
            &c.call(Method::POST, &one(&id, "retry-failed"), None)
                .await?,
        ),
        CampaignsCommand::Delete { id } => {
            c.call(Method::DELETE, &format!("/campaigns/{id}"), None)
                .await?;
        }
        CampaignsCommand::Watch { id, every } => watch(&c, &id, every).await?,
    }
    Ok(())
}

fn finished(state: &str) -> bool {
    matches!(state, "Completed" | "Cancelled" | "Aborted")
}

/// One bar per wave (done = succeeded + failed), one for the whole campaign,
/// and the state line; redrawn every `every` seconds.
async fn watch(c: &ApiClient, id: &str, every: u64) -> CliResult {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{prefix:>9} [{bar:40}] {pos}/{len} {msg}")
        .map_err(|e| e.to_string())?
        .progress_chars("=> ");
    let total = multi.add(
        ProgressBar::new(0)
            .with_style(style.clone())
            .with_prefix("all"),
    );
    let state = multi.add(ProgressBar::new_spinner());
    let mut waves: Vec<ProgressBar> = Vec::new();
    loop {
        let v = c
            .call(Method::GET, &format!("/campaigns/{id}"), None)
            .await?;
        let n = |o: &Value, k: &str| o[k].as_u64().unwrap_or(0);
        for (i, w) in v["Waves"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            if waves.len() <= i {
                let bar = multi.insert_before(
                    &total,
                    ProgressBar::new(0)
                        .with_style(style.clone())
                        .with_prefix(format!("wave {i}")),
                );
                waves.push(bar);
            }
            let counts = &w["Counts"];
            let bar = &waves[i];
            bar.set_length(n(w, "Size"));
            bar.set_position(n(counts, "Succeeded") + n(counts, "Failed"));
            bar.set_message(format!(
                "{} ok, {} failed, {} in progress, {} queued{}",
                n(counts, "Succeeded"),
                n(counts, "Failed"),
                n(counts, "InProgress"),
                n(counts, "Queued"),
                if w["Open"] == true { "" } else { " (not open)" }
            ));
        }
        let counts = &v["Counts"];
        let size: u64 = counts
            .as_object()
            .map_or(0, |o| o.values().filter_map(Value::as_u64).sum());
        total.set_length(size);
        total.set_position(n(counts, "Succeeded") + n(counts, "Failed"));
        total.set_message(
            v["Eta"]
                .as_str()
                .map_or_else(String::new, |e| format!("ETA {e}")),
        );
        let st = v["State"].as_str().unwrap_or("?").to_string();
        state.set_message(format!("{st}: {}", v["StateReason"].as_str().unwrap_or("")));
        state.tick();
        if finished(&st) {
            for b in waves.iter().chain([&total]) {
                b.abandon();
            }
            state.abandon();
            // The bars draw only on a terminal; the outcome is printed either way.
            println!("{st}: {}", v["StateReason"].as_str().unwrap_or(""));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(every.max(1))).await;
    }
}

#[derive(Args)]
pub struct FleetArgs {
    /// Print the JSON answer instead of the summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiOpts,
}

/// `stationkeeper fleet`: a short summary of `GET /fleet` (or the JSON).
pub async fn fleet(a: FleetArgs) -> CliResult {
    let c = ApiClient::from_opts(&a.api)?;
    let f = c.call(Method::GET, "/fleet", None).await?;
    if a.json {
        print_json(&f);
        return Ok(());
    }
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    println!(
        "{} gateways: {} polled CUPS since {}, {} connected to the LNS, {} never polled CUPS",
        n(&f["Gateways"]),
        n(&f["OnlineByCups"]),
        f["OnlineSince"].as_str().unwrap_or("?"),
        n(&f["ConnectedToLns"]),
        n(&f["NeverPolledCups"])
    );
    println!(
        "{:>8} {:>8}  STATION / PACKAGE / MODEL",
        "GATEWAYS", "ONLINE"
    );
    for v in f["Versions"].as_array().into_iter().flatten() {
        println!(
            "{:>8} {:>8}  {} / {} / {}",
            n(&v["Gateways"]),
            n(&v["OnlineByCups"]),
            v["Station"].as_str().unwrap_or(""),
            v["PackageVersion"].as_str().unwrap_or("(none)"),
            v["Model"].as_str().unwrap_or("")
        );
    }
    let tasks: Vec<String> = f["OpenTasks"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k} {}", n(v)))
        .collect();
    println!(
        "open tasks: {}",
        if tasks.is_empty() {
            "none".into()
        } else {
            tasks.join(", ")
        }
    );
    for cp in f["Campaigns"].as_array().into_iter().flatten() {
        println!(
            "campaign {} ({}): {} - {}",
            cp["Id"].as_str().unwrap_or(""),
            cp["Name"].as_str().unwrap_or("unnamed"),
            cp["State"].as_str().unwrap_or(""),
            cp["StateReason"].as_str().unwrap_or("")
        );
    }
    for g in f["NeedsAttention"].as_array().into_iter().flatten() {
        println!(
            "attention {} {}: {}",
            g["GatewayEui"].as_str().unwrap_or(""),
            g["Kind"].as_str().unwrap_or(""),
            g["Detail"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
