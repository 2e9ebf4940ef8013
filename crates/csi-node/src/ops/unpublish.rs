//! NodeUnpublishVolume: unmount target_path and remove what publish created there.
//!
//! Invariants: a missing target is OK; a directory is removed only if empty (`rmdir`, never a
//! recursive delete), so a failed unmount can never delete volume data; a symlink is refused;
//! an id Carve never issued is OK with nothing touched (idempotent: it was never published).

use super::NodeCore;
use crate::{mount::mountinfo::mounted_at, paths};
use csi_common::{Error, Result, ids::VolumeId};
use csi_proto::v1::NodeUnpublishVolumeRequest;

/// Runs NodeUnpublishVolume.
pub async fn unpublish(core: &NodeCore, req: NodeUnpublishVolumeRequest) -> Result<()> {
    let volume = VolumeId::lookup(&req.volume_id)?;
    let target = paths::check_shape(&req.target_path, "target_path")?;
    let Some(volume) = volume else {
        return Ok(()); // an id Carve never issued was never published: nothing to undo
    };
    let meta = match std::fs::symlink_metadata(&target) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::internal(format!("stat {}: {e}", target.display()))),
    };
    if meta.file_type().is_symlink() {
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
    let removed = if meta.is_dir() {
        std::fs::remove_dir(&target)
    } else {
        std::fs::remove_file(&target)
    };
    match removed {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::internal(format!("remove {}: {e}", target.display()))),
    }
    tracing::info!(volume = %volume, target = %target.display(), "unpublished");
    Ok(())
}
