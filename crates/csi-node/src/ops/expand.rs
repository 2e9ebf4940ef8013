//! NodeExpandVolume: rescan the volume's SCSI disk so the kernel sees the size the LV was grown
//! to on the target, then grow the mounted filesystem online (resize2fs on the device for ext4,
//! xfs_growfs on the staging mount for XFS). Block volumes are rescanned only.
//!
//! Invariants: only a staged volume is expanded, through its staging path or one of its
//! publish targets; the disk is the one of the volume's own iSCSI session and its serial is
//! checked again before the filesystem is touched; the tools get no size, so they only ever
//! grow to the disk's size; a repeated call finds nothing to grow and answers the same
//! capacity; the wait for a new size is bounded by the device timeout.
//!
//! Errors (spec.md, NodeExpandVolume Errors, read with what kubelet does with each code): an
//! empty `volume_id` or `volume_path` or a negative range is INVALID_ARGUMENT; an id Carve never
//! issued, a volume not staged here, and a path (volume or staging) that is malformed, missing,
//! outside the kubelet directory or not this volume's, the staging mount gone or holding another
//! device included, are NOT_FOUND ("volume does not exist"); a range Carve cannot satisfy
//! (`required_bytes` above `limit_bytes`, as ControllerExpandVolume answers, or the disk already
//! above `limit_bytes`) is OUT_OF_RANGE. kubelet treats INVALID_ARGUMENT, OUT_OF_RANGE and
//! NOT_FOUND as infeasible: final, the PVC is marked `NodeResizeInfeasible` until its size
//! changes (kubernetes/kubernetes pkg/volume/csi/expander.go, `nodeExpandWithClient` and
//! `isInfeasibleError`, kubernetes#126108; pkg/volume/util/operationexecutor/node_expander.go,
//! `NodeExpander.expandOnPlugin`). So anything that may pass by itself must not use them: a
//! disk that has not shown the required size within the device timeout (the target not serving
//! the grown LV yet) is UNAVAILABLE, which kubelet retries. FAILED_PRECONDITION is never
//! answered: spec.md reserves it for a volume in use whose filesystem cannot grow online
//! ("Caller MUST NOT retry"; kubelet's `inUseError` then never retries on this node), and Carve
//! grows ext4 and XFS online; a refusal that the shared checks raise as FAILED_PRECONDITION (the
//! disk's serial is not the volume's) is INTERNAL here ([`expand`]).

use super::{NodeCore, capability, device_binds};
use crate::{
    device::{Device, matcher},
    mount::mountinfo::mounted_at,
    paths,
    records::{Access, StageRecord},
};
use csi_common::{Error, Kind, Result, placed::VolumeHandle};
use csi_proto::v1::VolumeCapability;
use std::{
    path::Path,
    time::{Duration, Instant},
};

/// Pause between rescans while waiting for the disk to reach the required size.
const RESCAN_INTERVAL: Duration = Duration::from_millis(250);

/// A NodeExpandVolume request, stripped of gRPC.
///
/// The fields stay as the CO sent them and [`expand`] parses them itself, in the spec's error
/// order: an empty id or volume path and a negative range are INVALID_ARGUMENT, `required_bytes`
/// above `limit_bytes` is OUT_OF_RANGE, an id Carve never issued or a path that cannot be the
/// volume's is NOT_FOUND, and the capability is read only once the volume's stage record is
/// found (it is checked against the record).
#[derive(Debug, Clone, Copy)]
pub struct Expand<'a> {
    /// Volume id (untrusted).
    pub volume_id: &'a str,
    /// The staging path or a publish target of the volume (untrusted; outside the kubelet
    /// directory it holds no volume: NOT_FOUND).
    pub volume_path: &'a str,
    /// The staging path (untrusted; `""`: not given; outside the kubelet directory or not where
    /// the volume is staged: NOT_FOUND).
    pub staging_path: &'a str,
    /// `capacity_range.required_bytes` (0: unset, as is a missing range).
    pub required_bytes: i64,
    /// `capacity_range.limit_bytes` (0: unset, as is a missing range).
    pub limit_bytes: i64,
    /// The capability, if given, read by [`capability::parse`].
    pub capability: Option<&'a VolumeCapability>,
}

/// What NodeExpandVolume did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expanded {
    /// The disk's size after the rescan, in bytes: the filesystem (if any) was grown to it.
    pub capacity_bytes: i64,
}

/// Runs NodeExpandVolume; errors as the module doc says. A FAILED_PRECONDITION from a shared
/// check (the disk's serial, a multipath map's paths disagreeing) becomes INTERNAL with the same
/// message: the refusal stands (nothing is grown), but kubelet must not read it as "this volume
/// cannot grow online" and stop expanding it on this node.
pub async fn expand(core: &NodeCore, req: Expand<'_>) -> Result<Expanded> {
    expand_volume(core, req).await.map_err(|e| {
        if e.kind() == Kind::FailedPrecondition {
            Error::internal(e.message())
        } else {
            e
        }
    })
}

async fn expand_volume(core: &NodeCore, req: Expand<'_>) -> Result<Expanded> {
    let volume = VolumeHandle::lookup(req.volume_id)?;
    let volume_path = paths::lookup(req.volume_path, "volume_path")?;
    let (required, limit) = range(req.required_bytes, req.limit_bytes)?;
    let volume = volume
        .ok_or_else(|| Error::not_found(format!("volume {:?} does not exist", req.volume_id)))?;
    let not_here = |what: &str, raw: &str| {
        Error::not_found(format!("volume {volume} is not at {what} {raw:?}"))
    };
    let volume_path = volume_path.ok_or_else(|| not_here("volume_path", req.volume_path))?;
    paths::confine_lookup(&volume_path, &core.kubelet_dir, "volume_path")?;
    let staging = match req.staging_path {
        "" => None,
        raw => {
            let staging = paths::check_shape(raw, "staging_target_path")
                .map_err(|_| not_here("staging_target_path", raw))?;
            paths::confine_lookup(&staging, &core.kubelet_dir, "staging_target_path")?;
            Some(staging)
        }
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
    if let Some(cap) = req.capability {
        let cap = capability::parse(Some(cap))?;
        if std::mem::discriminant(&cap.access) != std::mem::discriminant(&record.access) {
            return Err(Error::invalid_argument(format!(
                "volume {volume} is staged as {:?}, not as the capability says",
                record.access
            )));
        }
    }
    if !volume_path.exists() {
        return Err(Error::not_found(format!(
            "volume path {} does not exist",
            volume_path.display()
        )));
    }
    let device = core
        .attached_device(&record)?
        .filter(|d| core.devices.exists(d))
        .ok_or_else(|| {
            Error::unavailable(format!(
                "the disk of volume {volume} is not attached (iSCSI session down?)"
            ))
        })?;
    check_volume_path(core, &record, &device, &volume_path)?;
    let kernel = core.devices.kernel_serial(&device)?;
    matcher::check_serial(&kernel, &record.serial, "VPD page 0x80")?;

    let size = rescan_until(core, &device, required).await?;
    if limit > 0 && size > limit {
        return Err(Error::out_of_range(format!(
            "the disk of volume {volume} is {size} bytes, above the limit of {limit}"
        )));
    }
    if let Access::Mount { fs_type, .. } = &record.access {
        core.formatter
            .grow(fs_type, &device.path, &record.staging_path)
            .await
            .map_err(|e| e.context(format!("expand volume {volume}")))?;
    }
    tracing::info!(volume = %volume, device = %device.path.display(), size, "expanded volume on the node");
    Ok(Expanded {
        capacity_bytes: i64::try_from(size)
            .map_err(|_| Error::internal(format!("disk size {size} does not fit an i64")))?,
    })
}

/// `(required, limit)` in bytes, 0 meaning unset: a negative value is a malformed field
/// (INVALID_ARGUMENT), `required` above a set `limit` a range no volume satisfies (OUT_OF_RANGE,
/// spec.md "Unsupported capacity_range", as ControllerExpandVolume answers the same range).
fn range(required_bytes: i64, limit_bytes: i64) -> Result<(u64, u64)> {
    if required_bytes < 0 || limit_bytes < 0 {
        return Err(Error::invalid_argument(
            "capacity_range must not be negative",
        ));
    }
    if limit_bytes > 0 && required_bytes > limit_bytes {
        return Err(Error::out_of_range(format!(
            "capacity_range.required_bytes {required_bytes} exceeds limit_bytes {limit_bytes}"
        )));
    }
    Ok((required_bytes.cast_unsigned(), limit_bytes.cast_unsigned()))
}

/// `volume_path` must be the staging path or a publish target of this very volume, and the
/// staging mount must be there and hold the volume's disk; otherwise the volume is not at the
/// path the CO named: NOT_FOUND (spec.md: "volume does not exist"), final for kubelet, which is
/// right: retrying finds the same mount table. NodeStageVolume mounts and grows again.
fn check_volume_path(
    core: &NodeCore,
    record: &StageRecord,
    device: &Device,
    volume_path: &Path,
) -> Result<()> {
    let table = core.mounter.table()?;
    let ours = match &record.access {
        Access::Mount { fs_type, .. } => {
            let staged = mounted_at(&table, &record.staging_path).ok_or_else(|| {
                Error::not_found(format!(
                    "volume {} is not mounted at its staging path {}: stage the volume again",
                    record.volume_id,
                    record.staging_path.display()
                ))
            })?;
            if staged.source != device.path.to_string_lossy() || staged.fs_type != *fs_type {
                return Err(Error::not_found(format!(
                    "{} holds {} ({}), not the volume's disk {} ({fs_type})",
                    record.staging_path.display(),
                    staged.source,
                    staged.fs_type,
                    device.path.display()
                )));
            }
            volume_path == record.staging_path
                || mounted_at(&table, volume_path)
                    .is_some_and(|m| (m.major, m.minor) == (staged.major, staged.minor))
        }
        Access::Block => {
            volume_path == record.staging_path
                || device_binds(&table, &device.name)
                    .iter()
                    .any(|m| m.mount_point == volume_path)
        }
    };
    if ours {
        Ok(())
    } else {
        Err(Error::not_found(format!(
            "volume {} is neither staged nor published at {}",
            record.volume_id,
            volume_path.display()
        )))
    }
}

/// Rescans the disk until it reports at least `required` bytes (once if 0), within the device
/// timeout; returns its size. Still smaller at the deadline is UNAVAILABLE: the target does not
/// serve the grown LV yet (the CO calls NodeExpandVolume after ControllerExpandVolume), which a
/// later call may find done; kubelet retries it, where OUT_OF_RANGE would be final.
async fn rescan_until(core: &NodeCore, device: &Device, required: u64) -> Result<u64> {
    let deadline = Instant::now() + core.device_timeout;
    loop {
        core.devices.rescan(device).await?;
        let size = core.devices.size_bytes(device)?;
        if size >= required {
            return Ok(size);
        }
        if Instant::now() >= deadline {
            return Err(Error::unavailable(format!(
                "{} is {size} bytes after rescanning for {:?}, less than the {required} required: \
                 the target does not serve the new size yet (is ControllerExpandVolume done?)",
                device.path.display(),
                core.device_timeout
            )));
        }
        tokio::time::sleep(RESCAN_INTERVAL).await;
    }
}
