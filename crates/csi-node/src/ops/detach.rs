//! The one way a disk stops being used on this node, shared by NodeUnstageVolume, the rollback
//! of a failed stage and the upkeep loop's stale-session removal: is the disk in use, and
//! detach one path (flush, delete the SCSI device, log out, delete the node record).
//!
//! Invariants: every check fails closed (an unreadable holder list or mount table is an error,
//! never "unused"); a step whose object is gone is done, not failed; the order is flush, delete,
//! logout, node record, as LXD's connector does (the SCSI device is deleted before logout so the
//! kernel never keeps a disk whose session is gone).

use super::{NodeCore, device_binds};
use crate::{device::Device, iscsi::find_session, mount::MountInfo};
use csi_common::{Result, ids::Iqn};
use std::net::SocketAddr;

/// What may legitimately use the disk being checked.
#[derive(Debug, Default, Clone, Copy)]
pub struct Allowed<'a> {
    /// Our own staging mount of the volume (its mounts and propagation peers are ours).
    pub staging: Option<&'a MountInfo>,
    /// A holder that is ours: the multipath map stacked on a path disk.
    pub holder: Option<&'a str>,
    /// Check for an exclusive opener too (not while our own staging mount holds the disk).
    pub exclusive: bool,
}

/// Why the disk `/dev/<disk>` is in use, if it is: bind-mounted as a device, held by a
/// stacked device (`/sys/class/block/<disk>/holders`), its filesystem mounted anywhere but at
/// `allowed.staging` (in this mount namespace or another one), or open exclusively.
pub fn in_use(core: &NodeCore, disk: &str, allowed: Allowed<'_>) -> Result<Option<String>> {
    let table = core.mounter.table()?;
    if let Some(b) = device_binds(&table, disk).first() {
        return Ok(Some(format!(
            "/dev/{disk} is still published (bind-mounted) at {}: unpublish it first",
            b.mount_point.display()
        )));
    }
    if let Some(holder) = core
        .host
        .holders(disk)?
        .into_iter()
        .find(|h| Some(h.as_str()) != allowed.holder)
    {
        return Ok(Some(format!(
            "/dev/{disk} is held by {holder} (/sys/class/block/{disk}/holders): deactivate it first"
        )));
    }
    let number = core
        .host
        .dev_number(disk)
        .or(allowed.staging.map(|m| (m.major, m.minor)));
    if let Some((major, minor)) = number {
        let staging = allowed.staging.map(|m| m.mount_point.as_path());
        if let Some(m) = table.iter().find(|m| {
            (m.major, m.minor) == (major, minor) && Some(m.mount_point.as_path()) != staging
        }) {
            return Ok(Some(format!(
                "the filesystem of /dev/{disk} is still mounted (published) at {}: unpublish it first",
                m.mount_point.display()
            )));
        }
        let ours: Vec<&MountInfo> = allowed.staging.into_iter().collect();
        if let Some(elsewhere) = core.host.foreign_mounts(major, minor, &ours)?.first() {
            return Ok(Some(format!(
                "the filesystem of /dev/{disk} is still mounted in another mount namespace at {elsewhere}"
            )));
        }
    }
    if allowed.exclusive {
        return core.host.exclusive_user(disk);
    }
    Ok(None)
}

/// How to treat a disk's buffers before it is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Flush, and fail if that fails while the disk is still reachable (a volume's data).
    Required,
    /// Flush if the session is logged in; a failure is logged (nobody's data: a stale disk).
    BestEffort,
    /// Do not flush (a path of a multipath map: the map was flushed and removed before).
    Skip,
}

/// Detaches the session of `target` at `portal`: flushes and deletes its disks (`lun`, or every
/// disk of the session when `None`), logs out and deletes the node record.
pub async fn detach_path(
    core: &NodeCore,
    target: &Iqn,
    portal: SocketAddr,
    lun: Option<u32>,
    flush: Flush,
) -> Result<()> {
    let sessions = core.initiator.sessions();
    let session = find_session(&sessions, target, portal);
    let logged_in = session.is_some_and(|s| s.state == "LOGGED_IN");
    let disks: Vec<Device> = session
        .map(|s| {
            s.disks
                .iter()
                .filter(|(l, _)| lun.is_none_or(|want| *l == want))
                .map(|(_, d)| Device::from_name(d))
                .collect()
        })
        .unwrap_or_default();
    for disk in disks.iter().filter(|d| core.devices.exists(d)) {
        flush_disk(core, disk, flush, logged_in).await?;
        core.devices.delete(disk)?;
        tracing::info!(target_iqn = %target, portal = %portal, device = %disk.path.display(), "deleted SCSI device");
    }
    let logout = core.initiator.logout(target, portal).await?;
    let record = core.initiator.delete_record(target, portal).await?;
    tracing::info!(target_iqn = %target, portal = %portal, logout = ?logout, record = ?record, "detached path");
    Ok(())
}

/// Flushes `disk` as `flush` says. A required flush that fails is skipped, not failed, when
/// nothing can reach the disk any more (it vanished, its session is not logged in, or the
/// kernel answers ENXIO because the target dropped the LUN): those buffers cannot be written
/// anywhere, and refusing would leave the session and records behind forever. A best-effort
/// flush is not even tried on a session that is not logged in (it would block until iscsid
/// gives up).
async fn flush_disk(core: &NodeCore, disk: &Device, flush: Flush, logged_in: bool) -> Result<()> {
    if flush == Flush::Skip || (flush == Flush::BestEffort && !logged_in) {
        return Ok(());
    }
    let Err(e) = core.devices.flush(disk).await else {
        return Ok(());
    };
    let unreachable = e.message().contains("No such device or address");
    if flush == Flush::BestEffort || !core.devices.exists(disk) || !logged_in || unreachable {
        tracing::warn!(device = %disk.path.display(), error = %e, "disk unreachable or unowned: skipping the flush");
        return Ok(());
    }
    Err(e)
}
