//! `stationkeeper audit`: one page of the audit log (`GET /audit-log`), filtered
//! like the API, printed as its JSON.

use clap::Args;
use hyper::Method;

use super::{print_json, ApiClient, ApiOpts, CliResult};

#[derive(Args)]
pub struct AuditArgs {
    /// Only entries about this resource: wireless-gateways, blobs, fuota-tasks...
    #[arg(long)]
    resource: Option<String>,
    /// Only entries about this resource Id.
    #[arg(long)]
    resource_id: Option<String>,
    /// Only calls by this token or access key name (e.g. api-token).
    #[arg(long)]
    actor: Option<String>,
    /// Only entries at or after this RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Only entries before this RFC 3339 time.
    #[arg(long)]
    until: Option<String>,
    /// Entries per page (1-250).
    #[arg(long)]
    max_results: Option<usize>,
    /// The NextToken of the previous page.
    #[arg(long)]
    next_token: Option<String>,
    #[command(flatten)]
    api: ApiOpts,
}

pub async fn run(a: AuditArgs) -> CliResult {
    let max = a.max_results.map(|n| n.to_string());
    let pairs: Vec<(&str, &str)> = [
        ("resource", a.resource.as_deref()),
        ("resourceId", a.resource_id.as_deref()),
        ("actor", a.actor.as_deref()),
        ("since", a.since.as_deref()),
        ("until", a.until.as_deref()),
        ("maxResults", max.as_deref()),
        ("nextToken", a.next_token.as_deref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .collect();
    let query = serde_urlencoded::to_string(&pairs).map_err(|e| e.to_string())?;
    let client = ApiClient::from_opts(&a.api)?;
    print_json(
        &client
            .call(Method::GET, &format!("/audit-log?{query}"), None)
            .await?,
    );
    Ok(())
}
