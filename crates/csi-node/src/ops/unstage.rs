//! NodeUnstageVolume: unmount, flush, remove the multipath map (if any), delete each path's SCSI
//! device, log out of each, delete the node records and the stage record.
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
//! touched (spec.md: "not staged to the staging_target_path: the Plugin MUST reply 0 OK"). A
//! staging path outside the kubelet directory is INVALID_ARGUMENT (as NodeUnpublishVolume's
//! target_path) before the stage record or the mount table is read: nothing is ever staged
//! there, and nothing there is unmounted.

use super::{
    NodeCore,
    detach::{self, Allowed, Flush},
};
use crate::{
    device::Device,
    iscsi::find_session,
    mount::mountinfo::mounted_at,
    paths,
    records::{Access, StageRecord},
};
use csi_common::{Error, Result, ids::Iqn, placed::VolumeHandle};

/// A NodeUnstageVolume request, stripped of gRPC. [`unstage`] parses both fields (an id Carve
/// never issued is OK, not an error, so the id is looked up, never just parsed).
#[derive(Debug, Clone, Copy)]
pub struct Unstage<'a> {
    /// Volume id (untrusted).
    pub volume_id: &'a str,
    /// The staging path (untrusted; must lie under the kubelet directory, unless it is where
    /// this node's stage record put the volume).
    pub staging_path: &'a str,
}

/// Runs NodeUnstageVolume.
pub async fn unstage(core: &NodeCore, req: Unstage<'_>) -> Result<()> {
    let volume = VolumeHandle::lookup(req.volume_id)?;
    let staging = paths::check_shape(req.staging_path, "staging_target_path")?;
    let Some(volume) = volume else {
        return Ok(()); // an id Carve never issued was never staged: nothing to undo
    };
    let record = core.records.load(&volume)?;
    // The path this node's own record staged the volume at is undone wherever it lies (staged
    // by an older plugin, or under another --kubelet-dir); any other path must lie under the
    // kubelet directory.
    if record.as_ref().is_none_or(|r| r.staging_path != staging) {
        paths::confine(&staging, &core.kubelet_dir, "staging_target_path")?;
    }
    let Some(record) = record else {
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
    core.records.remove(&volume)
}

/// Refuses (changing nothing) while the volume is in use; otherwise undoes whatever part of a
/// stage exists: unmount, then for a multipath stage flush and remove the map (its removal must
/// succeed, or this fails and a retry resumes here), then detach every path
/// ([`detach::detach_path`]). Fails on the first step that fails.
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
    let flush = match &record.multipath {
        Some(wwid) => {
            remove_map(core, record, &target, wwid, device.as_ref()).await?;
            Flush::Skip
        }
        None => Flush::Required,
    };
    if device.is_none() {
        tracing::info!(volume = %record.volume_id, "no disk attached: nothing to flush or delete");
    }
    for portal in record.portals() {
        detach::detach_path(core, &target, portal, Some(record.lun), flush).await?;
    }
    tracing::info!(volume = %record.volume_id, target = %target, "detached");
    Ok(())
}

/// Flushes the map's buffers (unless no path of it is logged in: nothing could write them),
/// removes the map (`multipath -f`) and unregisters its WWID. The removal must succeed; the
/// unregistration is logged when it fails (a registered WWID only makes multipathd claim that
/// LUN again, and a volume id, so its WWID, is never reused).
async fn remove_map(
    core: &NodeCore,
    record: &StageRecord,
    target: &Iqn,
    wwid: &str,
    map: Option<&Device>,
) -> Result<()> {
    let sessions = core.initiator.sessions();
    let paths: Vec<Device> = record
        .portals()
        .into_iter()
        .filter_map(|p| find_session(&sessions, target, p))
        .filter_map(|s| s.disk(record.lun))
        .map(Device::from_name)
        .filter(|d| core.devices.exists(d))
        .collect();
    if let Some(map) = map {
        let reachable = record
            .portals()
            .into_iter()
            .any(|p| find_session(&sessions, target, p).is_some_and(|s| s.state == "LOGGED_IN"));
        if reachable {
            core.devices.flush(map).await?;
        } else {
            tracing::warn!(volume = %record.volume_id, map = %map.name, "no path of the map is logged in: not flushing it");
        }
    }
    let removal = core.multipath.remove_map(wwid).await?;
    tracing::info!(volume = %record.volume_id, wwid, removal = ?removal, "removed multipath map");
    if let Some(path) = paths.first()
        && let Err(e) = core.multipath.forget(path).await
    {
        tracing::warn!(volume = %record.volume_id, wwid, error = %e, "cannot remove the WWID from multipath's wwids file");
    }
    Ok(())
}

/// FailedPrecondition naming the user when the volume is still in use on this node: the device
/// it is used through ([`detach::in_use`], our staging mount allowed) and, for a multipath
/// stage, each path disk (only the map may hold it).
fn refuse_if_in_use(core: &NodeCore, record: &StageRecord, device: Option<&Device>) -> Result<()> {
    let table = core.mounter.table()?;
    let staged = match &record.access {
        Access::Mount { .. } => mounted_at(&table, &record.staging_path),
        Access::Block => None,
    };
    let allowed = Allowed {
        staging: staged,
        holder: None,
        exclusive: matches!(record.access, Access::Block),
    };
    let why = match (device, staged) {
        (Some(dev), _) => detach::in_use(core, &dev.name, allowed)?,
        // The disk is gone but our staging mount is still there: its other mounts are still
        // users of the volume's (dead) filesystem.
        (None, Some(m)) => {
            let other = table.iter().find(|o| {
                (o.major, o.minor) == (m.major, m.minor) && o.mount_point != m.mount_point
            });
            match other {
                Some(o) => Some(format!(
                    "volume is still published at {}: unpublish it first",
                    o.mount_point.display()
                )),
                None => core.host.foreign_mounts(m.major, m.minor, &[m])?.first().map(|f| {
                    format!("the volume's filesystem is still mounted in another mount namespace at {f}")
                }),
            }
        }
        (None, None) => None,
    };
    if let Some(why) = why {
        return Err(Error::failed_precondition(why));
    }
    if record.multipath.is_some() {
        let target = Iqn::parse(&record.target)?;
        let sessions = core.initiator.sessions();
        for portal in record.portals() {
            let Some(disk) =
                find_session(&sessions, &target, portal).and_then(|s| s.disk(record.lun))
            else {
                continue;
            };
            let allowed = Allowed {
                holder: device.map(|d| d.name.as_str()),
                ..Allowed::default()
            };
            if let Some(why) = detach::in_use(core, disk, allowed)? {
                return Err(Error::failed_precondition(format!(
                    "a path of the volume's multipath map is in use: {why}"
                )));
            }
        }
    }
    Ok(())
}
