//! The Node RPCs as operations on the OS layers, one file per RPC, plus `upkeep` (the
//! stale-session sweep run at start and on a timer), `heal` (the staged volumes' path self-heal
//! run with it) and `detach` (the in-use check and path teardown unstage and the sweep share).
//! Operations take a borrowed domain request stripped of gRPC (`stage::Stage`, `publish::Publish`,
//! ...) and return a domain result (`stats::VolumeStats`, `expand::Expanded`, `info::NodeInfo`);
//! `service` alone converts CSI requests and responses. Each operation parses its fields itself,
//! so that its errors come in the spec's order; the one CSI message read here is the
//! `VolumeCapability` ([`capability::parse`]). Nothing here builds a gRPC status: operations
//! return domain errors, `service` turns them into codes.
//!
//! Invariants: every operation is idempotent; mutating operations are run by `service` in a
//! spawned task that holds the volume's guard, so a client timeout never half-cancels them.

pub mod capability;
pub mod detach;
pub mod expand;
pub mod heal;
pub mod info;
pub mod publish;
pub mod stage;
pub mod stage_paths;
pub mod stats;
pub mod unpublish;
pub mod unstage;
pub mod upkeep;

#[cfg(test)]
pub mod testing;
#[cfg(test)]
mod tests;

use crate::{
    device::{Device, DeviceLocator},
    filesystem::{FsProbe, mkfs::Formatter},
    host::HostView,
    iscsi::{Initiator, find_session},
    mount::{MountInfo, Mounter},
    multipath::Multipath,
    records::{StageRecord, StateDir},
};
use csi_common::{
    Result,
    ids::{Iqn, NodeId},
    topology::Segments,
};
use std::{path::PathBuf, sync::Arc, time::Duration};
use tokio::sync::Semaphore;

/// Everything the operations need.
#[derive(Debug)]
pub struct NodeCore {
    /// This node's id (its initiator IQN).
    pub node_id: NodeId,
    /// max_volumes_per_node (0: not reported).
    pub max_volumes: i64,
    /// accessible_topology segments (empty: none reported).
    pub topology: Segments,
    /// The iSCSI initiator.
    pub initiator: Arc<dyn Initiator>,
    /// Block devices.
    pub devices: Arc<dyn DeviceLocator>,
    /// Content probe.
    pub probe: Arc<dyn FsProbe>,
    /// Mounts.
    pub mounter: Arc<dyn Mounter>,
    /// mkfs and fsck.
    pub formatter: Formatter,
    /// Stage records.
    pub records: StateDir,
    /// Bounds concurrent mkfs runs.
    pub mkfs_permits: Arc<Semaphore>,
    /// How long to wait for a disk after login.
    pub device_timeout: Duration,
    /// Holders, other mount namespaces, exclusive openers, filesystem health.
    pub host: HostView,
    /// The kubelet directory (`--kubelet-dir`): every path a Node RPC takes (staging paths,
    /// publish targets, volume paths) must lie under it ([`crate::paths::confine`]).
    pub kubelet_dir: PathBuf,
    /// dm-multipath.
    pub multipath: Arc<dyn Multipath>,
    /// When a stage uses a multipath map (`--multipath`).
    pub multipath_mode: crate::multipath::Mode,
}

impl NodeCore {
    /// The device the volume is used through: for a multipath stage its map (found by WWID),
    /// else the disk of the session in sysfs.
    pub fn attached_device(&self, record: &StageRecord) -> Result<Option<Device>> {
        if let Some(wwid) = &record.multipath {
            return Ok(self.multipath.map(wwid));
        }
        let target = Iqn::parse(&record.target)?;
        let sessions = self.initiator.sessions();
        Ok(find_session(&sessions, &target, record.portal)
            .and_then(|s| s.disk(record.lun))
            .map(Device::from_name))
    }
}

/// Mounts (other than `except`) that show the filesystem mounted at `staging`.
pub fn other_mounts_of<'a>(
    table: &'a [MountInfo],
    of: &MountInfo,
    except: &[&std::path::Path],
) -> Vec<&'a MountInfo> {
    table
        .iter()
        .filter(|m| {
            (m.major, m.minor) == (of.major, of.minor) && !except.contains(&m.mount_point.as_path())
        })
        .collect()
}

/// Whether `path` holds the volume of `record` on this node: it is the staging path, a mount of
/// the staged filesystem (same device number as the staging mount, or the recorded disk as
/// source when the staging mount is gone), or a bind mount of the recorded disk's device node
/// (block). NodeGetVolumeStats answers NOT_FOUND for any other path (spec.md: "volume does not
/// exist on the specified volume_path").
pub fn holds_volume(
    table: &[MountInfo],
    record: &StageRecord,
    path: &std::path::Path,
    readonly_view: Option<&str>,
) -> bool {
    if path == record.staging_path {
        return true;
    }
    let disk = record.device.as_deref();
    match &record.access {
        crate::records::Access::Mount { .. } => {
            let staged = crate::mount::mountinfo::mounted_at(table, &record.staging_path);
            crate::mount::mountinfo::mounted_at(table, path).is_some_and(|m| {
                staged.is_some_and(|s| (s.major, s.minor) == (m.major, m.minor))
                    || disk.is_some_and(|d| m.source == format!("/dev/{d}"))
            })
        }
        crate::records::Access::Block => disk.is_some_and(|d| {
            // A disk the kernel has dropped (session gone) leaves its bind mount in place, with
            // the device node's root shown as `/<disk>//deleted`: still this volume's path, so
            // that stats report it abnormal instead of NOT_FOUND.
            let deleted = format!("/{d}//deleted");
            // A read-only publication binds its device-mapper view (`dm-N`, stacked on the disk
            // and named after volume and target), not the disk.
            let view = readonly_view.map(|v| format!("/{v}"));
            device_binds(table, d).iter().any(|m| m.mount_point == path)
                || table.iter().any(|m| {
                    m.mount_point == path
                        && m.fs_type == "devtmpfs"
                        && Some(&m.root) == view.as_ref()
                })
                || table
                    .iter()
                    .any(|m| m.mount_point == path && m.fs_type == "devtmpfs" && m.root == deleted)
        }),
    }
}

/// Bind mounts of the device node `/dev/<name>` (block publications).
pub fn device_binds<'a>(table: &'a [MountInfo], name: &str) -> Vec<&'a MountInfo> {
    let root = format!("/{name}");
    table
        .iter()
        .filter(|m| m.fs_type == "devtmpfs" && m.root == root)
        .collect()
}
