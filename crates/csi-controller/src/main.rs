//! `csi-controller`: parses flags, sets up logs and metrics, seeds the volume-group ledger
//! (resynced on a timer and on SIGHUP), reconciles LIO with LVM, serves until SIGTERM/SIGINT.

use anyhow::Context;
use clap::Parser;
use csi_common::{command::SystemRunner, serve, telemetry};
use csi_controller::{config::ControllerArgs, gauges, lio::saveconfig, reconcile, resync, server};
use std::{sync::Arc, time::Duration};

/// How often reconciliation is retried while the volume group is unavailable.
const RECONCILE_RETRY: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = ControllerArgs::parse();
    telemetry::init_logging(args.common.log_format);
    if let Some(address) = args.common.metrics_address {
        telemetry::install_metrics(address).map_err(anyhow::Error::msg)?;
        gauges::describe();
    }
    tracing::info!(
        driver = %args.common.driver_name,
        version = env!("CARGO_PKG_VERSION"),
        volume_group = ?args.volume_group,
        backend = ?args.lio_backend,
        "starting csi-controller"
    );
    let runner = Arc::new(SystemRunner::with_prefix(args.common.prefix()));
    let controller = server::build(&args, runner).context("invalid configuration")?;
    if let Ok(lvm) = controller.ctx.lvm() {
        // Seed the ledger from one report before anything reads it (a failure leaves it empty:
        // reads then ask LVM and the first admission seeds it).
        if let Err(e) = lvm.resync().await {
            tracing::warn!(error = %e, "cannot read the volume group yet; the ledger seeds later");
        }
        resync::spawn(Arc::clone(lvm), args.lvm_resync_interval);
    }
    let chap = match std::fs::read_to_string(&controller.saveconfig) {
        Ok(text) => saveconfig::chap_credentials(&text).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "saveconfig unreadable: CHAP credentials come back on republish");
            Default::default()
        }),
        Err(_) => Default::default(),
    };
    // Resume the wipes a stopped controller left unfinished (the quarantined LVs are the state).
    controller.ctx.wipe_requested();
    let guards = controller.volume_guards.clone();
    if args.volume_group.is_some()
        && let Err(e) = reconcile::reconcile_guarded(&controller.ctx, &chap, &guards).await
    {
        tracing::warn!(error = %e, "reconciliation failed; retrying in the background");
        let ctx = controller.ctx.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RECONCILE_RETRY).await;
                match reconcile::reconcile_guarded(&ctx, &chap, &guards).await {
                    Ok(_) => break,
                    Err(e) => tracing::warn!(error = %e, "reconciliation failed; retrying"),
                }
            }
        });
    }
    let ctx = controller.ctx.clone();
    let served = serve::serve(
        &args.common.endpoint,
        controller.routes,
        args.common.slow_rpc(),
        serve::shutdown_signal(),
    )
    .await
    .context("serving the CSI endpoint");
    // A change still waiting for the coalesced save is written before exit.
    if let Err(e) = ctx.lio_saved().await {
        tracing::error!(error = %e, "cannot save the LIO configuration at shutdown");
    }
    served
}
