//! NodeUnstageVolume: unmount, flush, delete the SCSI device, log out, delete the node record
//! and the stage record.
//!
//! Invariants: the stage record stays until every step is done, so a retry resumes; nothing is
//! left mounted, attached or logged in when it returns OK. A volume still in use is refused
//! with nothing torn down: published (another mount of its filesystem or device), a holder
//! stacked on the disk (`/sys/block/X/holders`), a mount of its filesystem in another mount
//! namespace that our unmount would not take with it, an exclusive opener of a block volume.
//! (A mount volume's disk is held by our own staging mount until it is unmounted, so its
//! exclusive-open check runs after the unmount, and refuses before flush and logout.) A step
//! whose object is already gone is done, not failed: a disk that vanished or whose target is
//! unreachable is not flushed (nothing can reach it), and logout and record removal still run.
//! A volume not staged at that path, an id Carve never issued included, is OK and nothing is
//! touched (spec.md: "not staged to the staging_target_path: the Plugin MUST reply 0 OK").

use super::{NodeCore, device_binds, other_mounts_of};
use crate::{
    device::Device,
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

/// Refuses (changing nothing) while the volume is in use; otherwise undoes whatever part of a
/// stage exists. Fails on the first step that fails.
pub async fn teardown(core: &NodeCore, record: &StageRecord) -> Result<()> {
    let target = Iqn::parse(&record.target)?;
    let device = core
        .attached_device(record)?
        .filter(|d| core.devices.exists(d));
    refuse_if_in_use(core, record, device.as_ref())?;
    if let Access::Mount { .. } = record.access {
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
        if let Some(dev) = &device
            && let Some(user) = core.host.exclusive_user(&dev.name)?
        {
            return Err(Error::failed_precondition(format!(
                "{user}: the staging mount is gone but the disk is still in use; not logging out"
            )));
        }
    }
    if let Some(dev) = &device {
        flush(core, record, &target, dev).await?;
        core.devices.delete(dev)?;
        tracing::info!(volume = %record.volume_id, device = %dev.path.display(), "deleted SCSI device");
    } else {
        tracing::info!(volume = %record.volume_id, "no disk attached: nothing to flush or delete");
    }
    let logout = core.initiator.logout(&target, record.portal).await?;
    let deleted = core.initiator.delete_record(&target, record.portal).await?;
    tracing::info!(volume = %record.volume_id, target = %target, logout = ?logout, record = ?deleted, "detached");
    Ok(())
}

/// FailedPrecondition naming the user when the volume is still in use on this node.
fn refuse_if_in_use(core: &NodeCore, record: &StageRecord, device: Option<&Device>) -> Result<()> {
    let busy = |what: String| Err(Error::failed_precondition(what));
    let table = core.mounter.table()?;
    if let Some(b) = device.and_then(|d| device_binds(&table, &d.name).first().copied()) {
        return busy(format!(
            "block volume is still published at {}: unpublish it first",
            b.mount_point.display()
        ));
    }
    if let Some(dev) = device
        && let Some(holder) = core.host.holders(&dev.name)?.first()
    {
        return busy(format!(
            "{} is held by {holder} (/sys/class/block/{}/holders): deactivate it first",
            dev.path.display(),
            dev.name
        ));
    }
    let staged = mounted_at(&table, &record.staging_path);
    if let (Access::Mount { .. }, Some(m)) = (&record.access, staged)
        && let Some(o) = other_mounts_of(&table, m, &[&record.staging_path]).first()
    {
        return busy(format!(
            "volume is still published at {}: unpublish it first",
            o.mount_point.display()
        ));
    }
    let number = device
        .and_then(|d| core.host.dev_number(&d.name))
        .or(staged.map(|m| (m.major, m.minor)));
    if let Some((major, minor)) = number {
        let ours: Vec<_> = staged.into_iter().collect();
        if let Some(elsewhere) = core.host.foreign_mounts(major, minor, &ours)?.first() {
            return busy(format!(
                "the volume's filesystem is still mounted in another mount namespace at {elsewhere}"
            ));
        }
    }
    if let (Access::Block, Some(dev)) = (&record.access, device)
        && let Some(user) = core.host.exclusive_user(&dev.name)?
    {
        return busy(user);
    }
    Ok(())
}

/// Flushes the disk's buffers, unless nothing can reach the disk any more: it vanished, its
/// session is not logged in, or the kernel answers ENXIO (the target dropped the LUN). Those
/// buffers cannot be written anywhere, and refusing would leave the session and records behind
/// forever.
async fn flush(core: &NodeCore, record: &StageRecord, target: &Iqn, dev: &Device) -> Result<()> {
    let Err(e) = core.devices.flush(dev).await else {
        return Ok(());
    };
    let sessions = core.initiator.sessions();
    let logged_in = crate::iscsi::find_session(&sessions, target, record.portal)
        .is_some_and(|s| s.state == "LOGGED_IN");
    let unreachable = e.message().contains("No such device or address");
    if !core.devices.exists(dev) || !logged_in || unreachable {
        tracing::warn!(volume = %record.volume_id, device = %dev.path.display(), error = %e,
            logged_in, "disk unreachable: skipping the flush");
        return Ok(());
    }
    Err(e)
}
