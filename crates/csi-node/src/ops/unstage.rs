//! NodeUnstageVolume: unmount, flush, delete the SCSI device, log out, delete the node record
//! and the stage record.
//!
//! Invariants: every step must succeed or the call fails (the stage record stays, so a retry
//! resumes); nothing is left mounted, attached or logged in when it returns OK; a volume still
//! published (another mount of its filesystem or device) is refused, never yanked; a volume
//! not staged at that path, an id Carve never issued included, is OK and nothing is touched
//! (spec.md: "not staged to the staging_target_path: the Plugin MUST reply 0 OK").

use super::{NodeCore, device_binds, other_mounts_of};
use crate::{
    mount::mountinfo::mounted_at,
    paths,
    state::{Access, StageRecord},
};
use csi_common::{
    Error, Result,
    ids::{Iqn, VolumeId},
};
use csi_proto::v1::NodeUnstageVolumeRequest;

/// Runs NodeUnstageVolume.
pub async fn unstage(core: &NodeCore, req: NodeUnstageVolumeRequest) -> Result<()> {
    let volume = VolumeId::lookup(&req.volume_id)?;
    let staging = paths::check_shape(&req.staging_target_path, "staging_target_path")?;
    let Some(volume) = volume else {
        return Ok(()); // an id Carve never issued was never staged: nothing to undo
    };
    let Some(record) = core.state.load(&volume)? else {
        let table = core.mounter.table()?;
        if let Some(m) = mounted_at(&table, &staging) {
            return Err(Error::failed_precondition(format!(
                "{} has {} mounted but there is no stage record for {volume}; refusing to guess",
                staging.display(),
                m.source
            )));
        }
        return Ok(()); // already unstaged
    };
    if record.staging_path != staging {
        return Ok(()); // not staged at this path
    }
    teardown(core, &record)
        .await
        .map_err(|e| e.context(format!("unstage volume {volume}")))?;
    core.state.remove(&volume)
}

/// Undoes whatever part of a stage exists. Fails on the first step that fails.
pub async fn teardown(core: &NodeCore, record: &StageRecord) -> Result<()> {
    let target = Iqn::parse(&record.target)?;
    let device = core.attached_device(record)?;
    let table = core.mounter.table()?;
    if let Some(b) = device
        .as_ref()
        .and_then(|d| device_binds(&table, &d.name).first().copied())
    {
        return Err(Error::failed_precondition(format!(
            "block volume is still published at {}: unpublish it first",
            b.mount_point.display()
        )));
    }
    if let Access::Mount { .. } = record.access {
        if let Some(m) = mounted_at(&table, &record.staging_path) {
            let others = other_mounts_of(&table, m, &[&record.staging_path]);
            if let Some(o) = others.first() {
                return Err(Error::failed_precondition(format!(
                    "volume is still published at {}: unpublish it first",
                    o.mount_point.display()
                )));
            }
        }
        for _ in 0..8 {
            let table = core.mounter.table()?;
            if mounted_at(&table, &record.staging_path).is_none() {
                break;
            }
            core.mounter.unmount(&record.staging_path)?;
        }
        if mounted_at(&core.mounter.table()?, &record.staging_path).is_some() {
            return Err(Error::internal(format!(
                "{} is still mounted",
                record.staging_path.display()
            )));
        }
    }
    if let Some(dev) = &device {
        core.devices.flush(dev).await?;
        core.devices.delete(dev)?;
        tracing::info!(volume = %record.volume_id, device = %dev.path.display(), "deleted SCSI device");
    }
    let logout = core.initiator.logout(&target, record.portal).await?;
    let deleted = core.initiator.delete_record(&target, record.portal).await?;
    tracing::info!(volume = %record.volume_id, target = %target, logout = ?logout, record = ?deleted, "detached");
    Ok(())
}
