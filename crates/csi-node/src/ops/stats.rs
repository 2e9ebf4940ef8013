//! NodeGetVolumeStats: usage (statvfs for mounts, size for block) and the volume's condition
//! (abnormal when the session is down, the disk is gone, the mount is missing, or the
//! filesystem went read-only, recorded errors or shut down).
//!
//! Invariants (spec.md, NodeGetVolumeStats Errors): an empty `volume_id` or `volume_path` is
//! INVALID_ARGUMENT; every other way of naming no volume is NOT_FOUND: an id Carve never
//! issued, a volume not staged here, a `volume_path` that is relative, malformed, missing,
//! outside the kubelet directory, or neither the staging path nor a publish target of this
//! volume (never statvfs of a path that is not the volume's), and a `staging_target_path` (when
//! given) that is malformed, outside the kubelet directory or not where this volume is staged.
//! An I/O error on the path (a shut-down filesystem answers EIO) is an abnormal condition with
//! usage left out, not NOT_FOUND.

use super::NodeCore;
use crate::{
    device::readonly::view_name, iscsi::find_session, mount::mountinfo::mounted_at, paths,
    records::Access,
};
use csi_common::{Error, Result, ids::Iqn, placed::VolumeHandle};

/// A NodeGetVolumeStats request, stripped of gRPC. [`stats`] parses the fields: an id Carve
/// never issued and a path that cannot be the volume's are NOT_FOUND, only an empty id or
/// volume path INVALID_ARGUMENT.
#[derive(Debug, Clone, Copy)]
pub struct Stats<'a> {
    /// Volume id (untrusted).
    pub volume_id: &'a str,
    /// The staging path or a publish target of the volume (untrusted).
    pub volume_path: &'a str,
    /// The staging path (untrusted; `""`: not given, as the spec allows): only checked, it
    /// must be where the volume is staged.
    pub staging_path: &'a str,
}

/// What a usage figure counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes.
    Bytes,
    /// Inodes.
    Inodes,
}

/// One usage figure (0: not known, as for `available` and `used` of a block volume).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// What is counted.
    pub unit: Unit,
    /// The total.
    pub total: i64,
    /// What is still free for the volume's user.
    pub available: i64,
    /// What is in use.
    pub used: i64,
}

/// What NodeGetVolumeStats found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeStats {
    /// Bytes then inodes for a mount volume, bytes (total only) for a block volume; empty when
    /// the volume cannot be measured (not mounted, filesystem sick, disk gone).
    pub usage: Vec<Usage>,
    /// Whether anything is wrong with the volume (the condition is abnormal).
    pub abnormal: bool,
    /// Every problem found, joined by `; `, or that the volume is healthy.
    pub message: String,
}

/// Runs NodeGetVolumeStats.
pub fn stats(core: &NodeCore, req: Stats<'_>) -> Result<VolumeStats> {
    let volume = VolumeHandle::lookup(req.volume_id)?;
    let path = paths::lookup(req.volume_path, "volume_path")?;
    let volume = volume
        .ok_or_else(|| Error::not_found(format!("volume {:?} does not exist", req.volume_id)))?;
    let path = path.ok_or_else(|| {
        Error::not_found(format!("volume path {:?} does not exist", req.volume_path))
    })?;
    paths::confine_lookup(&path, &core.kubelet_dir, "volume_path")?;
    let staging = match req.staging_path {
        "" => None,
        raw => {
            let staging = paths::lookup(raw, "staging_target_path")?.ok_or_else(|| {
                Error::not_found(format!("volume {volume} is not staged at {raw:?}"))
            })?;
            paths::confine_lookup(&staging, &core.kubelet_dir, "staging_target_path")?;
            Some(staging)
        }
    };
    let io_error = match std::fs::symlink_metadata(&path) {
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::not_found(format!(
                "volume path {} does not exist",
                path.display()
            )));
        }
        Err(e) => Some(format!("{}: {e}", path.display())),
    };
    let record = core
        .records
        .load(&volume)?
        .ok_or_else(|| Error::not_found(format!("volume {volume} is not staged on this node")))?;
    if let Some(staging) = staging.filter(|s| *s != record.staging_path) {
        return Err(Error::not_found(format!(
            "volume {volume} is staged at {}, not {}",
            record.staging_path.display(),
            staging.display()
        )));
    }
    let view = readonly_view_of(core, &record, &volume, &path);
    if !super::holds_volume(&core.mounter.table()?, &record, &path, view.as_deref()) {
        return Err(Error::not_found(format!(
            "volume {volume} is neither staged nor published at {}",
            path.display()
        )));
    }
    let target = Iqn::parse(&record.target)?;
    let sessions = core.initiator.sessions();
    let device = core.attached_device(&record)?;
    let mut problems = Vec::new();
    for portal in record.portals() {
        match find_session(&sessions, &target, portal) {
            None => problems.push(format!("no iSCSI session to {target} at {portal}")),
            Some(s) if s.state != "LOGGED_IN" => problems.push(format!(
                "iSCSI session {} to {portal} is {}",
                s.sid, s.state
            )),
            Some(s) if record.multipath.is_some() && s.disk(record.lun).is_none() => {
                problems.push(format!(
                    "the path through {portal} has no disk for LUN {}",
                    record.lun
                ));
            }
            Some(_) => {}
        }
    }
    if device.as_ref().is_none_or(|d| !core.devices.exists(d)) {
        problems.push(match &record.multipath {
            Some(wwid) => format!("the multipath map of {wwid} is gone"),
            None => format!("disk of LUN {} is gone", record.lun),
        });
    }
    let mut usage = Vec::new();
    if let Some(e) = io_error {
        problems.push(e);
    }
    match &record.access {
        Access::Mount { .. } => {
            let table = core.mounter.table()?;
            let mounted = mounted_at(&table, &path);
            let staged = mounted_at(&table, &record.staging_path);
            let sick = mounted.and_then(|m| {
                let writable = staged.is_some_and(|s| !s.read_only());
                core.host.fs_problem(m, writable)
            });
            if mounted.is_none() {
                problems.push(format!("{} is not mounted", path.display()));
            } else if let Some(problem) = sick {
                problems.push(problem);
            } else {
                let st = nix::sys::statvfs::statvfs(&path)
                    .map_err(|e| Error::internal(format!("statvfs {}: {e}", path.display())))?;
                let frsize = st.fragment_size().cast_signed();
                let (blocks, bfree, bavail) = (
                    st.blocks().cast_signed(),
                    st.blocks_free().cast_signed(),
                    st.blocks_available().cast_signed(),
                );
                usage.push(Usage {
                    total: blocks * frsize,
                    available: bavail * frsize,
                    used: (blocks - bfree) * frsize,
                    unit: Unit::Bytes,
                });
                let (files, ffree) = (st.files().cast_signed(), st.files_free().cast_signed());
                usage.push(Usage {
                    total: files,
                    available: ffree,
                    used: files - ffree,
                    unit: Unit::Inodes,
                });
            }
        }
        Access::Block => {
            if let Some(d) = device.as_ref().filter(|d| core.devices.exists(d)) {
                let size = core.devices.size_bytes(d)?.cast_signed();
                usage.push(Usage {
                    total: size,
                    available: 0,
                    used: 0,
                    unit: Unit::Bytes,
                });
            }
        }
    }
    Ok(VolumeStats {
        usage,
        abnormal: !problems.is_empty(),
        message: if problems.is_empty() {
            "volume is attached and healthy".into()
        } else {
            problems.join("; ")
        },
    })
}

/// The kernel name (`dm-N`) of the read-only view a read-only block publication of `volume` at
/// `path` binds: a holder of the staged disk whose device-mapper name is that publication's
/// [`view_name`]. `None` for any other publication.
fn readonly_view_of(
    core: &NodeCore,
    record: &crate::records::StageRecord,
    volume: &VolumeHandle,
    path: &std::path::Path,
) -> Option<String> {
    let disk = record.device.as_deref()?;
    let want = view_name(volume.as_str(), path);
    core.host.holders(disk).ok()?.into_iter().find(|h| {
        std::fs::read_to_string(core.host.sys.join("class/block").join(h).join("dm/name"))
            .is_ok_and(|n| n.trim() == want)
    })
}
