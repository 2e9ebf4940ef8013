//! `csi-node`: parses flags, sets up logs and metrics, serves until SIGTERM/SIGINT.

use anyhow::Context;
use clap::Parser;
use csi_common::{command::SystemRunner, serve, telemetry};
use csi_node::{config::NodeArgs, gauges, server};
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = NodeArgs::parse();
    telemetry::init_logging(args.common.log_format);
    if let Some(address) = args.common.metrics_address {
        telemetry::install_metrics(address).map_err(anyhow::Error::msg)?;
        gauges::describe();
        gauges::spawn_refresh("/sys".into(), args.state_dir(), gauges::REFRESH_INTERVAL);
    }
    tracing::info!(driver = %args.common.driver_name, version = env!("CARGO_PKG_VERSION"), "starting csi-node");
    let runner = Arc::new(SystemRunner::with_prefix(args.common.prefix()));
    let routes = server::routes(&args, runner).map_err(|e| anyhow::anyhow!("{e}"))?;
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
