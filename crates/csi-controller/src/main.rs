//! `csi-controller`: parses flags, sets up logs and metrics, serves until SIGTERM/SIGINT and,
//! beside the service from the start, seeds the volume-group ledger (resynced on a timer and on
//! SIGHUP, its thin pool's row on a shorter timer) and reconciles LIO with LVM (Probe is not ready until that completes).

use anyhow::Context;
use clap::Parser;
use csi_common::guard::OperationGuards;
use csi_common::{command::SystemRunner, serve, telemetry};
use csi_controller::{
    config::ControllerArgs, gauges, lio::saveconfig, ops::Ctx, reconcile, restoration::Restoration,
    resync, server,
};
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
    // Read before anything can save the file again.
    let chap = match std::fs::read_to_string(&controller.saveconfig) {
        Ok(text) => saveconfig::chap_credentials(&text).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "saveconfig unreadable: CHAP credentials come back on republish");
            std::collections::HashMap::default()
        }),
        Err(_) => std::collections::HashMap::default(),
    };
    if args.volume_group.is_some() {
        // Serve at once; Probe says not ready, and RPCs on volumes not restored yet say
        // UNAVAILABLE, until startup reconciliation completes.
        controller.restoration.expect();
    }
    tokio::spawn(start_up(
        controller.ctx.clone(),
        Arc::new(chap),
        controller.volume_guards.clone(),
        controller.restoration.clone(),
        args.clone(),
    ));
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

/// What runs beside the service from the start: seeds the ledger and starts its resync, resumes
/// unfinished wipes, then reconciles LIO with LVM (`chap`: the credentials saveconfig.json held
/// at start), retrying in the background until a pass succeeds.
async fn start_up(
    ctx: Ctx,
    chap: Arc<reconcile::SavedChap>,
    guards: OperationGuards,
    restoration: Restoration,
    args: ControllerArgs,
) {
    if let Ok(lvm) = ctx.lvm() {
        // Seed the ledger from one report before reconciliation reads it (a failure leaves it
        // empty: reads then ask LVM and the first admission seeds it).
        if let Err(e) = lvm.resync().await {
            tracing::warn!(error = %e, "cannot read the volume group yet; the ledger seeds later");
        }
        resync::spawn(
            Arc::clone(lvm),
            Arc::clone(&ctx.lio),
            args.lvm_resync_interval,
        );
        if let Some(pool) = &args.thin_pool {
            resync::spawn_pool_refresh(
                Arc::clone(lvm),
                pool.clone(),
                args.thin_pool_refresh_interval,
            );
        }
    }
    // Resume the wipes a stopped controller left unfinished (the quarantined LVs are the state).
    ctx.wipe_requested();
    if args.volume_group.is_none() {
        return;
    }
    let parallelism = reconcile::RESTORE_PARALLELISM;
    loop {
        let pass = reconcile::reconcile_serving(
            &ctx,
            Arc::clone(&chap),
            &guards,
            &restoration,
            parallelism,
        );
        match pass.await {
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, "reconciliation failed; retrying in the background");
            }
        }
        tokio::time::sleep(RECONCILE_RETRY).await;
    }
}
