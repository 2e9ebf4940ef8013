//! NodePublishVolume: bind-mount the staging mount (mount volumes) or the device node (block
//! volumes) at target_path.
//!
//! Invariants: target_path is validated (absolute, normalized, no symlink above or at it, and
//! mounted through an O_NOFOLLOW fd); the volume must be staged; publishing again with the same
//! arguments is OK, with other arguments ALREADY_EXISTS; a single-writer volume already
//! published elsewhere is FAILED_PRECONDITION; an id Carve never issued, or a volume not staged
//! here, is NOT_FOUND (after the checks of missing fields). target_path and staging_target_path
//! must lie under the kubelet directory (INVALID_ARGUMENT otherwise). A filesystem that went read-only, recorded errors or shut down is not
//! published (FAILED_PRECONDITION naming the problem). A read-only block publication binds a
//! read-only device-mapper view of the disk ([`crate::device::readonly`]), never the disk
//! itself: a read-only bind mount does not stop writes through a device node.

use super::{NodeCore, capability, device_binds, other_mounts_of};
use crate::{device::readonly::view_name, mount::mountinfo::mounted_at, paths, records::Access};
use csi_common::{Error, Result, placed::VolumeHandle};
use csi_proto::v1::{VolumeCapability, volume_capability::access_mode::Mode};
use std::{
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

fn same_kind(a: &Access, b: &Access) -> bool {
    match (a, b) {
        (Access::Block, Access::Block) => true,
        (Access::Mount { fs_type: x, .. }, Access::Mount { fs_type: y, .. }) => x == y,
        _ => false,
    }
}

/// A NodePublishVolume request, stripped of gRPC (the publish context, volume context and
/// secrets play no part: the stage used them).
///
/// The fields stay as the CO sent them and [`publish`] parses them itself, in the spec's error
/// order: a missing staging path is FAILED_PRECONDITION, malformed paths (the target checked
/// against the filesystem and the kubelet directory) then the capability are INVALID_ARGUMENT,
/// and only then is an id Carve never issued NOT_FOUND. Parsing the capability earlier, in
/// `service`, would answer a request with two faults with the other one.
#[derive(Debug, Clone, Copy)]
pub struct Publish<'a> {
    /// Volume id (untrusted).
    pub volume_id: &'a str,
    /// The staging path the volume was staged at (untrusted; must lie under the kubelet
    /// directory).
    pub staging_path: &'a str,
    /// The publish target (untrusted; must lie under the kubelet directory).
    pub target_path: &'a str,
    /// The capability, read by [`capability::parse`].
    pub capability: Option<&'a VolumeCapability>,
    /// The CO's readonly flag (a reader-only access mode is read-only too).
    pub readonly: bool,
}

/// Runs NodePublishVolume.
pub async fn publish(core: &NodeCore, req: Publish<'_>) -> Result<()> {
    let volume = VolumeHandle::lookup(req.volume_id)?;
    if req.staging_path.is_empty() {
        return Err(Error::failed_precondition(
            "staging_target_path is required (the plugin stages volumes)",
        ));
    }
    let staging = paths::check_shape(req.staging_path, "staging_target_path")?;
    paths::confine(&staging, &core.kubelet_dir, "staging_target_path")?;
    let target = paths::validate(req.target_path, "target_path")?;
    paths::confine(&target, &core.kubelet_dir, "target_path")?;
    let cap = capability::parse(req.capability)?;
    let volume = volume
        .ok_or_else(|| Error::not_found(format!("volume {:?} does not exist", req.volume_id)))?;
    let record = core
        .records
        .load(&volume)?
        .ok_or_else(|| Error::not_found(format!("volume {volume} is not staged on this node")))?;
    if record.staging_path != staging {
        return Err(Error::failed_precondition(format!(
            "volume {volume} is staged at {}, not {}",
            record.staging_path.display(),
            staging.display()
        )));
    }
    if !same_kind(&record.access, &cap.access) {
        return Err(Error::failed_precondition(format!(
            "volume {volume} was staged as {:?}, which this capability does not match",
            record.access
        )));
    }
    let readonly = req.readonly || cap.read_only_mode();
    let table = core.mounter.table()?;
    let single_writer = cap.mode == Mode::SingleNodeSingleWriter;
    match &record.access {
        Access::Mount { .. } => {
            let staged = mounted_at(&table, &staging).ok_or_else(|| {
                Error::failed_precondition(format!(
                    "{} is not mounted: stage the volume first",
                    staging.display()
                ))
            })?;
            if let Some(problem) = core.host.fs_problem(staged, !staged.read_only()) {
                return Err(Error::failed_precondition(format!(
                    "volume {volume} cannot be published: {problem}"
                )));
            }
            if let Some(m) = mounted_at(&table, &target) {
                if (m.major, m.minor) == (staged.major, staged.minor) && m.read_only() == readonly {
                    return Ok(());
                }
                return Err(Error::already_exists(format!(
                    "{} is already mounted with another volume or read-only flag",
                    target.display()
                )));
            }
            if single_writer
                && let Some(o) = other_mounts_of(&table, staged, &[&staging, &target]).first()
            {
                return Err(Error::failed_precondition(format!(
                    "single-writer volume {volume} is already published at {}",
                    o.mount_point.display()
                )));
            }
            create_dir(&target)?;
            core.mounter.bind(&staging, &target, readonly)?;
            if let Some(group) = &cap.mount_group {
                apply_group(&staging, group)?;
            }
        }
        Access::Block => {
            let device = core.attached_device(&record)?.ok_or_else(|| {
                Error::failed_precondition(format!(
                    "volume {volume}'s disk is not attached: stage it again"
                ))
            })?;
            crate::device::matcher::check_serial(
                &core.devices.kernel_serial(&device)?,
                &record.serial,
                "VPD page 0x80",
            )?;
            let view = view_name(volume.as_str(), &target);
            if let Some(m) = mounted_at(&table, &target) {
                let source = if readonly {
                    core.devices.readonly_view(&device, &view).await?
                } else {
                    device.clone()
                };
                if m.fs_type == "devtmpfs"
                    && m.root == format!("/{}", source.name)
                    && m.read_only() == readonly
                {
                    return Ok(());
                }
                return Err(Error::already_exists(format!(
                    "{} is already a mount point of something else",
                    target.display()
                )));
            }
            if single_writer {
                let holder = core.host.holders(&device.name)?.into_iter().next();
                if let Some(o) = device_binds(&table, &device.name).first() {
                    return Err(Error::failed_precondition(format!(
                        "single-writer volume {volume} is already published at {}",
                        o.mount_point.display()
                    )));
                }
                if let Some(h) = holder {
                    return Err(Error::failed_precondition(format!(
                        "single-writer volume {volume} is already in use (held by {h})"
                    )));
                }
            }
            create_file(&target)?;
            let source = if readonly {
                core.devices.readonly_view(&device, &view).await?
            } else {
                device
            };
            if let Err(e) = core.mounter.bind(&source.path, &target, readonly) {
                if readonly {
                    let _ = core.devices.remove_readonly_view(&view).await;
                }
                return Err(e);
            }
        }
    }
    tracing::info!(volume = %volume, target = %target.display(), readonly, "published");
    Ok(())
}

fn create_dir(target: &Path) -> Result<()> {
    match std::fs::create_dir(target) {
        Ok(()) => Ok(()),
        Err(e)
            if e.kind() == std::io::ErrorKind::AlreadyExists
                && std::fs::symlink_metadata(target).is_ok_and(|m| m.is_dir()) =>
        {
            Ok(())
        }
        Err(e) => Err(Error::internal(format!("create {}: {e}", target.display()))),
    }
}

fn create_file(target: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(target)
        .map(drop)
        .map_err(|e| Error::internal(format!("create {}: {e}", target.display())))
}

/// volume_mount_group: the volume's root directory becomes group-owned by `group`, group
/// writable and setgid, so the pod's supplementary group can write.
fn apply_group(root: &Path, group: &str) -> Result<()> {
    let gid: u32 = group.parse().map_err(|_| {
        Error::invalid_argument(format!(
            "volume_mount_group {group:?} must be a numeric gid"
        ))
    })?;
    nix::unistd::chown(root, None, Some(nix::unistd::Gid::from_raw(gid)))
        .map_err(|e| Error::internal(format!("chown {}: {e}", root.display())))?;
    let mode = std::fs::metadata(root)?.permissions().mode() | 0o2070;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode & 0o7777))?;
    Ok(())
}
