//! Command-line flags of `csi-controller`, each with an environment variable; the storage
//! host's own flags ([`StorageHostArgs`]) are shared with `carve-agent`.

use clap::Parser;
use csi_common::{
    cli::{CommonArgs, parse_seconds},
    topology::Segments,
};
use std::{path::PathBuf, time::Duration};

/// How LIO objects are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LioBackend {
    /// Write /sys/kernel/config/target directly in rtslib's layout (flat cost per volume).
    Configfs,
    /// Drive targetcli with one batch per operation (cost grows with every exported volume).
    Targetcli,
}

/// Carve's CSI controller: carves LVM logical volumes on this storage host and exports each one
/// over iSCSI through the Linux LIO target, one target per volume, attached to one node at a
/// time through per-initiator ACLs.
#[derive(Debug, Clone, Parser)]
#[command(name = "csi-controller", version, about, long_about = None)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// The storage host this controller drives (flags shared with carve-agent).
    #[command(flatten)]
    pub host: StorageHostArgs,

    /// A topology this storage host's volumes are reachable from, as key=value[,key=value]
    /// (repeatable; `;` separates several in the environment; none by default). Keys and values
    /// follow spec.md's `Topology` grammar and share one prefix, the same keys csi-node's
    /// --topology reports (for example `topology.carve.dev/zone=a`). Setting any makes the
    /// plugin advertise VOLUME_ACCESSIBILITY_CONSTRAINTS: CreateVolume then answers
    /// RESOURCE_EXHAUSTED when no requisite topology is served, every volume carries these
    /// topologies, and GetCapacity reports 0 for a topology not served (docs/topology.md).
    #[arg(long = "accessible-topology", env = "CARVE_ACCESSIBLE_TOPOLOGY", value_delimiter = ';', value_parser = Segments::parse, conflicts_with = "agents")]
    pub accessible_topology: Vec<Segments>,

    /// The agents file (JSON, see docs/agents.md): the storage hosts, each behind its
    /// carve-agent, this controller places volumes on by capacity and topology. Set, the
    /// controller drives no LVM or LIO of its own (the storage host flags are ignored and each
    /// agent's `segments` replace --accessible-topology); unset, it drives this host as always.
    /// A missing or malformed file is a start-up error.
    #[arg(long = "agents", env = "CARVE_AGENTS")]
    pub agents: Option<PathBuf>,

    /// Directory holding ca.crt (the CA an agent's certificate must chain to), tls.crt (this
    /// controller's client certificate, leaf first) and tls.key (its private key), as a
    /// Kubernetes TLS Secret mounts them; read once at start with --agents, never logged.
    #[arg(
        long = "agent-tls-dir",
        env = "CARVE_AGENT_TLS_DIR",
        default_value = "/etc/carve/agent-tls"
    )]
    pub agent_tls_dir: PathBuf,
}

impl ControllerArgs {
    /// The three TLS files in `--agent-tls-dir`.
    pub fn agent_tls_files(&self) -> csi_common::mtls::MtlsFiles {
        csi_common::mtls::MtlsFiles {
            ca: self.agent_tls_dir.join("ca.crt"),
            cert: self.agent_tls_dir.join("tls.crt"),
            key: self.agent_tls_dir.join("tls.key"),
        }
    }
}

/// The flags of a storage host's LVM and LIO layers: what `csi-controller` drives on its own
/// host and `carve-agent` drives for a remote controller, defined once for both binaries.
#[derive(Debug, Clone, clap::Args)]
pub struct StorageHostArgs {
    /// LVM volume group to carve volumes from. Probe reports not ready until it exists.
    #[arg(long, env = "CARVE_VOLUME_GROUP")]
    pub volume_group: Option<String>,

    /// Thin pool (in the volume group) used for thin=true volumes and snapshots.
    #[arg(long, env = "CARVE_THIN_POOL")]
    pub thin_pool: Option<String>,

    /// iSCSI portal ip:port the targets listen on; repeat for several. There is no 0.0.0.0
    /// default: name the storage network address.
    #[arg(long = "portal", env = "CARVE_PORTALS", value_delimiter = ',')]
    pub portals: Vec<String>,

    /// Prefix of target IQNs (default: iqn.2024-01.<driver name reversed>).
    #[arg(long, env = "CARVE_IQN_PREFIX")]
    pub iqn_prefix: Option<String>,

    /// How LIO is configured.
    #[arg(long, env = "CARVE_LIO_BACKEND", value_enum, default_value_t = LioBackend::Configfs)]
    pub lio_backend: LioBackend,

    /// targetcli executable (for --lio-backend targetcli).
    #[arg(long, env = "CARVE_TARGETCLI", default_value = "targetcli")]
    pub targetcli: PathBuf,

    /// LIO saveconfig.json kept current for administrators and the distribution's restore
    /// service (default: /etc/rtslib-fb-target/saveconfig.json on Debian, else
    /// /etc/target/saveconfig.json).
    #[arg(long, env = "CARVE_SAVECONFIG")]
    pub saveconfig: Option<PathBuf>,

    /// configfs mount point of LIO.
    #[arg(
        long,
        env = "CARVE_CONFIGFS_ROOT",
        default_value = "/sys/kernel/config/target"
    )]
    pub configfs_root: PathBuf,

    /// Timeout for each LVM command, in seconds.
    #[arg(long, env = "CARVE_LVM_TIMEOUT", default_value = "120", value_parser = parse_seconds)]
    pub lvm_timeout: Duration,

    /// Thin volumes may promise, in total, this many times the thin pool's size (1.0: no
    /// overcommit; CreateVolume answers RESOURCE_EXHAUSTED beyond it).
    #[arg(long, env = "CARVE_THIN_OVERPROVISION_RATIO", default_value_t = 1.0)]
    pub thin_overprovision_ratio: f64,

    /// At most this many volumes published to one node: ControllerPublishVolume answers
    /// RESOURCE_EXHAUSTED for one more (0: no limit). Keep it equal to the node plugin's
    /// --max-volumes, which NodeGetInfo reports to the scheduler.
    #[arg(long, env = "CARVE_MAX_VOLUMES_PER_NODE", default_value_t = crate::ops::attach_limit::DEFAULT_MAX_VOLUMES_PER_NODE)]
    pub max_volumes_per_node: u32,

    /// Run LVM's commands as lines of long-lived `lvm` shells (lvm(8) shell, with lvm2's
    /// `lvmdbusd` command profile from /etc/lvm/profile, as lvm2's D-Bus daemon does) instead of
    /// one process each: in the lab guest about 0.4 s less per command (process start and LVM's
    /// set-up paid once per shell). Where no shell starts (no such profile), LVM's commands run
    /// as processes, with a warning. false: always processes.
    #[arg(long, env = "CARVE_LVM_SHELL", default_value_t = true, action = clap::ArgAction::Set)]
    pub lvm_shell: bool,

    /// How many copies of the volume group's metadata LVM's archive (`/etc/lvm/archive`) keeps:
    /// one LVM change in 16 carries `--config backup{retain_min=N retain_days=0}`
    /// (lvm.conf(5)), so LVM removes older copies as it archives a new one (about N + 15
    /// copies are kept at most). LVM's own default
    /// keeps every copy for 30 days, and every change lists them all: with thousands of copies
    /// each LVM command takes about twice as long. 0: the host's lvm.conf decides.
    #[arg(long, env = "CARVE_LVM_ARCHIVE_KEEP", default_value_t = crate::host::DEFAULT_LVM_ARCHIVE_KEEP)]
    pub lvm_archive_keep: u32,

    /// How often the in-memory record of the volume group (the ledger) is read again from LVM,
    /// in seconds, to pick up hand edits and the thin pool's usage (SIGHUP and GetCapacity
    /// resync at once). A resync holds the VG, so the next timed one waits at least 20 times as
    /// long as the last took.
    #[arg(long, env = "CARVE_LVM_RESYNC_INTERVAL", default_value = "60", value_parser = parse_seconds)]
    pub lvm_resync_interval: Duration,

    /// How often the thin pool's usage, faults and zeroing flag are read, in seconds: from
    /// device-mapper (`dmsetup status` and `table`, no VG lock), off the request path, or one
    /// `lvs vg/pool` while the pool is not active. Thin CreateVolume, expansion and
    /// snapshots are admitted on that reading while it is younger than three intervals, and
    /// read the pool themselves otherwise (so no LVM read per request while this runs).
    #[arg(long, env = "CARVE_THIN_POOL_REFRESH_INTERVAL", default_value = "10", value_parser = parse_seconds)]
    pub thin_pool_refresh_interval: Duration,

    /// Timeout for each targetcli batch, in seconds.
    #[arg(long, env = "CARVE_TARGETCLI_TIMEOUT", default_value = "600", value_parser = parse_seconds)]
    pub targetcli_timeout: Duration,

    /// Timeout for zeroing one deleted linear volume before its extents are freed, in seconds
    /// (a failed or timed-out wipe is retried; the space stays used until one succeeds).
    #[arg(long, env = "CARVE_WIPE_TIMEOUT", default_value = "21600", value_parser = parse_seconds)]
    pub wipe_timeout: Duration,

    /// Serve thin volumes from a thin pool that does not zero newly provisioned chunks
    /// (`lvcreate --zero n`). Off by default: such a pool lets a new volume read the remains of
    /// deleted ones; CreateVolume (thin), expansion and snapshots answer FAILED_PRECONDITION and
    /// Probe reports not ready until the pool zeroes (`lvchange --zero y POOL`) or this is set.
    #[arg(long, env = "CARVE_ALLOW_UNZEROED_THIN_POOL")]
    pub allow_unzeroed_thin_pool: bool,
}
