//! `csi-node`: parses flags, sets up logs and metrics, sweeps stale sessions, serves until
//! SIGTERM/SIGINT.

use anyhow::Context;
use clap::Parser;
use csi_common::{command::SystemRunner, serve, telemetry};
use csi_node::{config::NodeArgs, gauges, server};
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = NodeArgs::parse();
    telemetry::init_logging(args.common.daemon.log_format);
    if let Some(address) = args.common.daemon.metrics_address {
        telemetry::install_metrics(address).map_err(anyhow::Error::msg)?;
        gauges::describe();
        gauges::spawn_refresh("/sys".into(), args.state_dir(), gauges::REFRESH_INTERVAL);
    }
    tracing::info!(driver = %args.common.driver_name, version = env!("CARGO_PKG_VERSION"), "starting csi-node");
    let runner = Arc::new(SystemRunner::with_prefix(args.common.prefix()));
    let (routes, core, guards) =
        server::build(&args, runner).map_err(|e| anyhow::anyhow!("{e}"))?;
    let prefix = server::iqn_prefix(&args).map_err(|e| anyhow::anyhow!("{e}"))?;
    // The start-up sweep finishes before the endpoint serves: no RPC can race it.
    let _upkeep = csi_node::ops::upkeep::start(core, guards, prefix, args.upkeep_interval).await;
    tracing::info!(state_dir = %args.state_dir().display(), "node service configured");
    serve::serve(
        &args.common.endpoint,
        routes,
        args.common.slow_rpc(),
        serve::shutdown_signal(),
    )
    .await
    .context("serving the CSI endpoint")
}
