//! NodeUnpublishVolume: unmount target_path and remove what publish created there.
//!
//! Invariants: an id Carve never issued is OK with nothing touched (idempotent: it was never
//! published); target_path must lie under the kubelet directory; a missing target is OK; a
//! directory is removed only if empty (`rmdir`, never a recursive delete), so a failed unmount
//! can never delete volume data; a regular file only if empty (the bind target a block publish
//! made; a file with content is left alone and logged); a symlink is refused. The read-only
//! device-mapper view of a read-only block publication is removed after the unmount (by its
//! name, derived from volume and target, so a retry after a partial call still finds it).

use super::NodeCore;
use crate::{device::readonly::view_name, mount::mountinfo::mounted_at, paths};
use csi_common::{Error, Result, placed::VolumeHandle};

/// A NodeUnpublishVolume request, stripped of gRPC. [`unpublish`] parses both fields (an id
/// Carve never issued is OK, not an error, so the id is looked up, never just parsed).
#[derive(Debug, Clone, Copy)]
pub struct Unpublish<'a> {
    /// Volume id (untrusted).
    pub volume_id: &'a str,
    /// The publish target (untrusted).
    pub target_path: &'a str,
}

/// Runs NodeUnpublishVolume.
pub async fn unpublish(core: &NodeCore, req: Unpublish<'_>) -> Result<()> {
    let volume = VolumeHandle::lookup(req.volume_id)?;
    let target = paths::check_shape(req.target_path, "target_path")?;
    let Some(volume) = volume else {
        return Ok(()); // an id Carve never issued was never published: nothing to undo
    };
    paths::confine(&target, &core.kubelet_dir, "target_path")?;
    let view = view_name(volume.as_str(), &target);
    let meta = match std::fs::symlink_metadata(&target) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            core.devices.remove_readonly_view(&view).await?;
            return Ok(());
        }
        // A filesystem that shut down answers EIO on its mount point: unmount it anyway.
        Err(_) if mounted_at(&core.mounter.table()?, &target).is_some() => None,
        Err(e) => return Err(Error::internal(format!("stat {}: {e}", target.display()))),
    };
    if meta.is_some_and(|m| m.file_type().is_symlink()) {
        return Err(Error::invalid_argument(format!(
            "target_path {} is a symlink",
            target.display()
        )));
    }
    for _ in 0..8 {
        if mounted_at(&core.mounter.table()?, &target).is_none() {
            break;
        }
        core.mounter.unmount(&target)?;
    }
    if mounted_at(&core.mounter.table()?, &target).is_some() {
        return Err(Error::internal(format!(
            "{} is still mounted",
            target.display()
        )));
    }
    core.devices.remove_readonly_view(&view).await?;
    let meta = match std::fs::symlink_metadata(&target) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::internal(format!("stat {}: {e}", target.display()))),
    };
    let removed = if meta.is_dir() {
        std::fs::remove_dir(&target)
    } else if meta.is_file() && meta.len() == 0 {
        std::fs::remove_file(&target)
    } else {
        tracing::warn!(volume = %volume, target = %target.display(), "not removing a file publish did not make");
        Ok(())
    };
    match removed {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::internal(format!("remove {}: {e}", target.display()))),
    }
    tracing::info!(volume = %volume, target = %target.display(), "unpublished");
    Ok(())
}
