//! Flags the binaries share, with their environment variables: [`CommonArgs`] for both CSI
//! plugins, [`DaemonArgs`] (within it) for every Carve daemon, carve-agent included.

use crate::{endpoint::Endpoint, ids::validate_driver_name, telemetry::LogFormat};
use std::{net::SocketAddr, time::Duration};

/// The default CSI driver name.
pub const DEFAULT_DRIVER_NAME: &str = "lvm-iscsi.csi.carve.dev";

/// Flags shared by `csi-controller` and `csi-node`.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// CSI endpoint to serve: unix:///path/to/csi.sock (parent directory created, stale socket
    /// removed, mode 0600) or tcp://host:port.
    #[arg(long, env = "CSI_ENDPOINT", default_value = "unix:///csi/csi.sock")]
    pub endpoint: Endpoint,

    /// CSI driver name reported by GetPluginInfo; must match the StorageClass provisioner.
    #[arg(long, env = "CARVE_DRIVER_NAME", default_value = DEFAULT_DRIVER_NAME, value_parser = parse_driver_name)]
    pub driver_name: String,

    /// Logging, metrics, the command prefix and the slow-RPC threshold (shared with carve-agent).
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

/// Flags of every Carve daemon, the CSI plugins and carve-agent alike: logs, metrics, the
/// command prefix and the slow-RPC threshold.
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    /// Log line format. The level comes from RUST_LOG (default: info; e.g. RUST_LOG=debug shows
    /// every external command, with secrets redacted).
    #[arg(long, env = "CARVE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Serve Prometheus metrics on this host:port (per-RPC counts, errors by gRPC code, latency
    /// histograms, external command durations). Off when not set.
    #[arg(long, env = "CARVE_METRICS_ADDRESS")]
    pub metrics_address: Option<SocketAddr>,

    /// Prefix for every external command, split on whitespace, e.g. "nsenter -t 1 -m --" to run
    /// the host's tools from a container.
    #[arg(long, env = "CARVE_COMMAND_PREFIX", value_parser = parse_prefix)]
    pub command_prefix: Option<Prefix>,

    /// Log a warning for any RPC slower than this many seconds.
    #[arg(long, env = "CARVE_SLOW_RPC_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub slow_rpc_seconds: u64,
}

impl DaemonArgs {
    /// The command prefix as argv words (empty for none).
    pub fn prefix(&self) -> Vec<String> {
        self.command_prefix.clone().map(|p| p.0).unwrap_or_default()
    }

    /// The slow-RPC threshold.
    pub fn slow_rpc(&self) -> Duration {
        Duration::from_secs(self.slow_rpc_seconds)
    }
}

/// A whitespace-split command prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix(pub Vec<String>);

#[allow(clippy::unnecessary_wraps)] // the shape clap's value_parser takes
fn parse_prefix(raw: &str) -> Result<Prefix, String> {
    Ok(Prefix(raw.split_whitespace().map(str::to_string).collect()))
}

fn parse_driver_name(raw: &str) -> Result<String, String> {
    validate_driver_name(raw)
        .map(|()| raw.to_string())
        .map_err(|e| e.to_string())
}

impl CommonArgs {
    /// The command prefix as argv words (empty for none).
    pub fn prefix(&self) -> Vec<String> {
        self.daemon.prefix()
    }

    /// The slow-RPC threshold.
    pub fn slow_rpc(&self) -> Duration {
        self.daemon.slow_rpc()
    }
}

/// Parses a duration in seconds for per-tool timeout flags.
pub fn parse_seconds(raw: &str) -> Result<Duration, String> {
    match raw.parse::<u64>() {
        Ok(0) | Err(_) => Err(format!("{raw:?} is not a positive number of seconds")),
        Ok(s) => Ok(Duration::from_secs(s)),
    }
}
