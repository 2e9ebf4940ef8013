//! `csi-controller`: parses flags, sets up logs and metrics, serves until SIGTERM/SIGINT and,
//! beside the service from the start, seeds the volume-group ledger (resynced on a timer and on
//! SIGHUP, its thin pool's row on a shorter timer) and reconciles LIO with LVM (Probe is not
//! ready until that completes): [`csi_controller::host::StorageHost::start`]. glibc's malloc is
//! held to [`MALLOC_ARENAS`] arenas before any thread starts.

use anyhow::Context;
use clap::Parser;
use csi_common::{command::SystemRunner, serve, telemetry};
use csi_controller::{config::ControllerArgs, gauges, server};
use std::sync::Arc;

/// The most malloc arenas glibc may create (`M_ARENA_MAX`, mallopt(3)). Its default is 8 per
/// core, and each arena keeps the memory its threads freed: with tokio's blocking threads
/// touring many of them during start-up reconciliation, that is megabytes of freed memory held
/// per arena. The controller allocates little and rarely, so two arenas cost it no contention
/// worth measuring; docs/benchmarks.md (*Tuning choices*) has the figures. It overrides a
/// `MALLOC_ARENA_MAX` in the environment.
#[cfg(target_env = "gnu")]
const MALLOC_ARENAS: libc::c_int = 2;

fn main() -> anyhow::Result<()> {
    // Before the runtime starts any thread: an arena is picked by a thread's first malloc.
    // SAFETY: mallopt only sets a malloc parameter; it is called while only this thread runs.
    // A zero return (parameter refused) leaves glibc's default, which is only more memory.
    // The workspace denies unsafe code; this FFI call is its one exception.
    #[cfg(target_env = "gnu")]
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
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
