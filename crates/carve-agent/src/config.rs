//! Command-line flags of `carve-agent`, each with an environment variable. The storage host's
//! flags (volume group, thin pool, portals, IQN prefix, LIO backend, timeouts) are csi-controller's
//! [`StorageHostArgs`], and logs, metrics and the command prefix csi-common's [`DaemonArgs`]:
//! defined once, so both binaries read a host's configuration the same way.

use clap::Parser;
use csi_common::{cli::DaemonArgs, mtls::MtlsFiles};
use csi_controller::config::StorageHostArgs;
use std::{net::SocketAddr, path::PathBuf};

/// The port carve-agent listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 9811;

/// Carve's storage agent: owns this host's LVM volume group and LIO target and serves them to
/// the Carve CSI controller over mutual TLS (carve.agent.v1).
#[derive(Debug, Clone, Parser)]
#[command(name = "carve-agent", version, about, long_about = None)]
pub struct AgentArgs {
    /// Address to listen on, ip:port (the storage network's address; only clients whose
    /// certificate the CA in --tls-dir signed get past the handshake).
    #[arg(long, env = "CARVE_AGENT_LISTEN")]
    pub listen: SocketAddr,

    /// Directory holding ca.crt (the CA a client's certificate must chain to), tls.crt (this
    /// agent's certificate, leaf first) and tls.key (its private key), as a Kubernetes TLS
    /// Secret mounts them. Read once at start; the key is never logged.
    #[arg(
        long,
        env = "CARVE_AGENT_TLS_DIR",
        default_value = "/etc/carve-agent/tls"
    )]
    pub tls_dir: PathBuf,

    /// The CSI driver name whose default IQN prefix (iqn.2024-01.<name reversed>) targets get
    /// when --iqn-prefix is not set: keep it the controller's, so a host's target IQNs do not
    /// change when it moves from the single-host controller to an agent.
    #[arg(long, env = "CARVE_DRIVER_NAME", default_value = csi_common::cli::DEFAULT_DRIVER_NAME)]
    pub driver_name: String,

    /// Logs, metrics, the command prefix and the slow-RPC threshold (as the CSI plugins').
    #[command(flatten)]
    pub daemon: DaemonArgs,

    /// The storage host the agent drives.
    #[command(flatten)]
    pub host: StorageHostArgs,
}

impl AgentArgs {
    /// The three TLS files in `--tls-dir`.
    pub fn tls_files(&self) -> MtlsFiles {
        MtlsFiles {
            ca: self.tls_dir.join("ca.crt"),
            cert: self.tls_dir.join("tls.crt"),
            key: self.tls_dir.join("tls.key"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_the_controllers_host_flags_and_requires_an_address() {
        let args = AgentArgs::try_parse_from([
            "carve-agent",
            "--listen",
            "192.0.2.10:9811",
            "--tls-dir",
            "/run/tls",
            "--volume-group",
            "vg0",
            "--thin-pool",
            "pool",
            "--portal",
            "192.0.2.10:3260",
            "--lio-backend",
            "targetcli",
        ])
        .unwrap();
        assert_eq!(args.host.volume_group.as_deref(), Some("vg0"));
        assert_eq!(args.host.portals, ["192.0.2.10:3260"]);
        assert_eq!(args.tls_files().key, PathBuf::from("/run/tls/tls.key"));
        assert!(AgentArgs::try_parse_from(["carve-agent", "--volume-group", "vg0"]).is_err());
    }

    /// deploy/carve-agent/carve-agent.env names only variables the agent reads (and RUST_LOG),
    /// and its values parse as the flags they stand for.
    #[test]
    fn the_deployed_example_environment_parses() {
        use clap::CommandFactory;
        let example = include_str!("../../../deploy/carve-agent/carve-agent.env");
        let command = AgentArgs::command();
        let mut argv = vec!["carve-agent".to_string()];
        for line in example.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once('=').expect("KEY=value");
            if key == "RUST_LOG" {
                continue;
            }
            let arg = command
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e == key))
                .unwrap_or_else(|| panic!("{key} is not a carve-agent variable"));
            argv.push(format!(
                "--{}={value}",
                arg.get_long().expect("a long flag")
            ));
        }
        let args = AgentArgs::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        assert_eq!(args.host.volume_group.as_deref(), Some("vg0"));
        assert!(!args.listen.ip().is_unspecified(), "never 0.0.0.0");
        let unit = include_str!("../../../deploy/carve-agent/carve-agent.service");
        assert!(unit.contains("EnvironmentFile=/etc/carve-agent/carve-agent.env"));
        assert!(unit.contains("ExecStart=/usr/local/bin/carve-agent\n"));
    }
}
