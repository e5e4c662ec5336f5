//! `stationkeeper refusals GATEWAY` and `stationkeeper unknown-routers`: why a
//! gateway's CUPS polls were refused, and which unknown router ids polled lately.

use clap::Args;
use hyper::Method;

use super::{print_json, ApiClient, ApiOpts, CliResult};

#[derive(Args)]
pub struct RefusalsArgs {
    /// The gateway's Id or EUI.
    gateway: String,
    #[command(flatten)]
    api: ApiOpts,
}

#[derive(Args)]
pub struct UnknownArgs {
    #[command(flatten)]
    api: ApiOpts,
}

pub async fn refusals(a: RefusalsArgs) -> CliResult {
    let client = ApiClient::from_opts(&a.api)?;
    let path = format!("/wireless-gateways/{}/refusals", a.gateway);
    print_json(&client.call(Method::GET, &path, None).await?);
    Ok(())
}

pub async fn unknown(a: UnknownArgs) -> CliResult {
    let client = ApiClient::from_opts(&a.api)?;
    print_json(&client.call(Method::GET, "/unknown-routers", None).await?);
    Ok(())
}
