//! `csi-controller`: parses flags, sets up logs and metrics, serves until SIGTERM/SIGINT.

use anyhow::Context;
use clap::Parser;
use csi_common::{command::SystemRunner, serve, telemetry};
use csi_controller::{config::ControllerArgs, server};
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = ControllerArgs::parse();
    telemetry::init_logging(args.common.log_format);
    if let Some(address) = args.common.metrics_address {
        telemetry::install_metrics(address).map_err(anyhow::Error::msg)?;
    }
    tracing::info!(
        driver = %args.common.driver_name,
        version = env!("CARGO_PKG_VERSION"),
        volume_group = ?args.volume_group,
        backend = ?args.lio_backend,
        "starting csi-controller"
    );
    let runner = Arc::new(SystemRunner::with_prefix(args.common.prefix()));
    let routes = server::routes(&args, runner);
    serve::serve(
        &args.common.endpoint,
        routes,
        args.common.slow_rpc(),
        serve::shutdown_signal(),
    )
    .await
    .context("serving the CSI endpoint")
}
