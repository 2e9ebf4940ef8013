//! `csi-controller`: parses flags, sets up logs and metrics, serves until SIGTERM/SIGINT and,
//! beside the service from the start, seeds the volume-group ledger (resynced on a timer and on
//! SIGHUP, its thin pool's row on a shorter timer) and reconciles LIO with LVM (Probe is not
//! ready until that completes): [`csi_controller::host::StorageHost::start`].

use anyhow::Context;
use clap::Parser;
use csi_common::{command::SystemRunner, serve, telemetry};
use csi_controller::{config::ControllerArgs, gauges, server};
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = ControllerArgs::parse();
    telemetry::init_logging(args.common.daemon.log_format);
    if let Some(address) = args.common.daemon.metrics_address {
        telemetry::install_metrics(address).map_err(anyhow::Error::msg)?;
        gauges::describe();
    }
    tracing::info!(
        driver = %args.common.driver_name,
        version = env!("CARGO_PKG_VERSION"),
        volume_group = ?args.host.volume_group,
        agents = ?args.agents,
        backend = ?args.host.lio_backend,
        "starting csi-controller"
    );
    let runner = Arc::new(SystemRunner::with_prefix(args.common.prefix()));
    let controller = server::build(&args, runner).context("invalid configuration")?;
    // Serve at once; Probe says not ready, and RPCs on volumes not restored yet say
    // UNAVAILABLE, until startup reconciliation completes.
    if let Some(host) = &controller.host {
        host.start();
    }
    let served = serve::serve(
        &args.common.endpoint,
        controller.routes,
        args.common.slow_rpc(),
        serve::shutdown_signal(),
    )
    .await
    .context("serving the CSI endpoint");
    // A change still waiting for the coalesced save is written before exit.
    if let Some(host) = &controller.host {
        host.shutdown().await;
    }
    served
}
