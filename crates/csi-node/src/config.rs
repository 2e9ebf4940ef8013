//! Command-line flags of `csi-node`, each with an environment variable.
//!
//! Invariant: every timeout is positive; the node id, when given, must be an initiator IQN.

use clap::Parser;
use csi_common::{
    cli::{CommonArgs, parse_seconds},
    topology::{self, Segments},
};
use std::{path::PathBuf, time::Duration};

/// Carve's CSI node plugin: logs in to a volume's iSCSI target, finds the disk through udev,
/// verifies its serial, formats it only when it is provably new, mounts it at the staging path
/// and bind-mounts it into pods (or bind-mounts the device for raw block volumes).
#[derive(Debug, Clone, Parser)]
#[command(name = "csi-node", version, about, long_about = None)]
pub struct NodeArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Node id reported to the CO. Must be this node's iSCSI initiator IQN, which the controller
    /// puts in the target's ACL. Default: read from --initiator-name-file.
    #[arg(long, env = "CARVE_NODE_ID")]
    pub node_id: Option<String>,

    /// open-iscsi initiator name file (InitiatorName=iqn...).
    #[arg(
        long,
        env = "CARVE_INITIATOR_NAME_FILE",
        default_value = "/etc/iscsi/initiatorname.iscsi"
    )]
    pub initiator_name_file: PathBuf,

    /// Host directory for stage records (default: /var/lib/kubelet/plugins/<driver-name>/).
    #[arg(long, env = "CARVE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Maximum number of Carve volumes attached to this node, reported by NodeGetInfo as
    /// max_volumes_per_node (kubelet turns it into CSINode allocatable, which the scheduler
    /// counts); 0 reports no limit. Keep it equal to the controller's --max-volumes-per-node.
    #[arg(long, env = "CARVE_MAX_VOLUMES", default_value_t = csi_common::contract::DEFAULT_MAX_VOLUMES_PER_NODE.into(), value_parser = clap::value_parser!(i64).range(0..))]
    pub max_volumes: i64,

    /// iscsiadm executable.
    #[arg(long, env = "CARVE_ISCSIADM", default_value = "iscsiadm")]
    pub iscsiadm: String,

    /// Timeout for each iscsiadm command, in seconds.
    #[arg(long, env = "CARVE_ISCSIADM_TIMEOUT", default_value = "60", value_parser = parse_seconds)]
    pub iscsiadm_timeout: Duration,

    /// Timeout for mkfs, in seconds.
    #[arg(long, env = "CARVE_MKFS_TIMEOUT", default_value = "600", value_parser = parse_seconds)]
    pub mkfs_timeout: Duration,

    /// iscsiadm iface used for node records and sessions.
    #[arg(long, env = "CARVE_ISCSI_IFACE", default_value = "default")]
    pub iscsi_iface: String,

    /// open-iscsi node record directory (the host's, mounted at the same path in a container).
    #[arg(
        long,
        env = "CARVE_ISCSI_NODES_DIR",
        default_value = "/etc/iscsi/nodes"
    )]
    pub iscsi_nodes_dir: PathBuf,

    /// Topology segments of this node, reported by NodeGetInfo, as key=value (repeatable or
    /// comma-separated; none by default). Keys and values follow spec.md's `Topology` grammar
    /// and share one prefix (for example `topology.carve.dev/zone=a`). Setting any makes the
    /// plugin advertise VOLUME_ACCESSIBILITY_CONSTRAINTS, as spec.md requires of a NodeGetInfo
    /// that reports a topology; the controller's --accessible-topology must then use the same
    /// keys (see docs/topology.md).
    #[arg(long = "topology", env = "CARVE_TOPOLOGY", value_delimiter = ',', value_parser = parse_segment)]
    pub topology: Vec<(String, String)>,

    /// A file on this node holding more of its topology segments, one key=value per line
    /// (`#` comments); how one DaemonSet gives each node its own zone. Unreadable: the plugin
    /// does not start (a node without its keys would make every provisioning for it fail).
    #[arg(long, env = "CARVE_TOPOLOGY_FILE")]
    pub topology_file: Option<PathBuf>,

    /// At most this many mkfs runs at once on this node.
    #[arg(long, env = "CARVE_MKFS_CONCURRENCY", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub mkfs_concurrency: u32,

    /// Timeout for blockdev and other short device tools, in seconds.
    #[arg(long, env = "CARVE_DEVICE_TOOL_TIMEOUT", default_value = "60", value_parser = parse_seconds)]
    pub device_tool_timeout: Duration,

    /// The kubelet's root directory: every Node RPC acts only on paths under it (staging paths,
    /// publish targets, volume paths); a staging or target path elsewhere is refused
    /// (INVALID_ARGUMENT), a volume path elsewhere holds no volume (NOT_FOUND).
    #[arg(long, env = "CARVE_KUBELET_DIR", default_value = "/var/lib/kubelet")]
    pub kubelet_dir: PathBuf,

    /// How long to wait for the disk to appear after login, in seconds.
    #[arg(long, env = "CARVE_DEVICE_TIMEOUT", default_value = "60", value_parser = parse_seconds)]
    pub device_timeout: Duration,

    /// How often, in seconds, the upkeep loop runs: it logs a staged volume's missing path in
    /// again (and rescans a session without its disk), and cleans up sessions and node records
    /// of Carve's targets that no stage record owns (also once at start, before serving); 0
    /// disables it.
    #[arg(long, env = "CARVE_UPKEEP_INTERVAL", default_value = "60", value_parser = parse_interval)]
    pub upkeep_interval: Duration,

    /// dm-multipath over the portals of a volume: `auto` (a map when the publish context names
    /// more than one portal), `on` (always a map) or `off` (log in to the first portal only).
    /// With `auto` or `on`, multipathd must answer on this host (Probe checks it).
    #[arg(long, env = "CARVE_MULTIPATH", value_enum, default_value_t = crate::multipath::Mode::Auto)]
    pub multipath: crate::multipath::Mode,

    /// multipath-tools' configuration directory (`config_dir` of multipath.conf(5)): csi-node
    /// writes its drop-in `carve.conf` there (the host's, mounted at the same path in a
    /// container).
    #[arg(
        long,
        env = "CARVE_MULTIPATH_CONF_DIR",
        default_value = "/etc/multipath/conf.d"
    )]
    pub multipath_conf_dir: PathBuf,

    /// multipath(8) program (the chart runs the host's, through nsenter, as for iscsiadm).
    #[arg(long, env = "CARVE_MULTIPATH_PROGRAM", default_value = "multipath")]
    pub multipath_program: String,

    /// multipathd(8) program (its CLI; the chart runs the host's, through nsenter).
    #[arg(long, env = "CARVE_MULTIPATHD_PROGRAM", default_value = "multipathd")]
    pub multipathd_program: String,

    /// Prefix of Carve's target IQNs, as the controller's --iqn-prefix (default:
    /// iqn.2024-01.<driver name reversed>). Only targets under it are ever cleaned up.
    #[arg(long, env = "CARVE_IQN_PREFIX")]
    pub iqn_prefix: Option<String>,
}

fn parse_interval(raw: &str) -> Result<Duration, String> {
    raw.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("{raw:?} is not a number of seconds"))
}

fn parse_segment(raw: &str) -> Result<(String, String), String> {
    Segments::parse(raw)?;
    raw.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{raw:?} is not key=value"))
}

impl NodeArgs {
    /// The node's topology from `--topology` and `--topology-file`: each key once (in any
    /// case), one key prefix.
    pub fn segments(&self) -> Result<Segments, String> {
        let mut segments = Segments::default();
        for (key, value) in &self.topology {
            segments.insert(key, value)?;
        }
        if let Some(path) = &self.topology_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("topology file {}: {e}", path.display()))?;
            segments
                .extend_from_lines(&text)
                .map_err(|e| format!("topology file {}: {e}", path.display()))?;
        }
        topology::check_one_prefix([&segments])?;
        Ok(segments)
    }
}

impl NodeArgs {
    /// The state directory, defaulting under the kubelet plugins directory.
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| {
            PathBuf::from("/var/lib/kubelet/plugins").join(&self.common.driver_name)
        })
    }
}
