//! `carve-agent`: parses flags, sets up logs and metrics, reads the TLS files, builds the storage
//! host and serves carve.agent.v1 over mutual TLS until SIGTERM/SIGINT.

use anyhow::Context;
use carve_agent::{config::AgentArgs, server};
use clap::Parser;
use csi_common::{command::SystemRunner, serve, telemetry};
use csi_controller::gauges;
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = AgentArgs::parse();
    telemetry::init_logging(args.daemon.log_format);
    if let Some(address) = args.daemon.metrics_address {
        telemetry::install_metrics(address).map_err(anyhow::Error::msg)?;
        gauges::describe();
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = %args.listen,
        tls_dir = %args.tls_dir.display(),
        volume_group = ?args.host.volume_group,
        backend = ?args.host.lio_backend,
        "starting carve-agent"
    );
    let mtls = args
        .tls_files()
        .load()
        .context("reading the TLS files in --tls-dir")?;
    let runner = Arc::new(SystemRunner::with_prefix(args.daemon.prefix()));
    let agent = server::build(&args, runner).context("invalid configuration")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    server::run(
        agent,
        listener,
        &mtls,
        args.daemon.slow_rpc(),
        serve::shutdown_signal(),
    )
    .await
    .context("serving carve.agent.v1")
}
