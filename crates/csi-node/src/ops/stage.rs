//! NodeStageVolume: log in (to every portal, for a multipath stage), find and verify the disk
//! of each path, assemble the paths into a dm-multipath map when `--multipath` says so, format
//! only a provably new volume, mount at the staging path (mount volumes) and keep a stage
//! record.
//!
//! Multipath: a new stage uses a map when `--multipath` is `on`, or `auto` with more than one
//! portal in the publish context; the record keeps that choice and every portal, so retries and
//! later calls follow the record, not the flag. A portal that does not log in does not fail the
//! stage while another does (the upkeep loop logs it in later); every path's disk has its unit
//! serial and WWID verified before multipathd is told about it, and the map is found by WWID
//! and used through `/dev/disk/by-id/dm-uuid-mpath-<wwid>`.
//!
//! Invariants: the stage record is saved before the first side effect; the serial is verified
//! before anything reads for the format decision or writes; XFS is mounted `nouuid` so clones
//! mount beside their source ([`mount_options`]); a failure after this call's own
//! login rolls the login back (the CO may never call unstage for a stage that failed); missing
//! fields and a staging path outside the kubelet directory (`--kubelet-dir`; a mount there would
//! cover a host directory) are INVALID_ARGUMENT, then an id Carve never issued is NOT_FOUND (spec.md,
//! NodeStageVolume Errors) before anything is read or written. A read-only stage (reader-only
//! access mode, or publish_context `readonly`: the LUN is write-protected) writes nothing: no
//! mkfs, fsck or grow, and a mount that replays no journal.

use super::{NodeCore, capability, stage_paths, unstage};
use crate::{
    device::{Device, Expected, matcher},
    filesystem::{Decision, decide, decision::Facts},
    iscsi::{Login, RecordSpec, find_session},
    mount::{FsMount, MountOptions, mountinfo::mounted_at, parse_flags},
    multipath::conf,
    paths,
    records::{Access, StageRecord, VERSION},
};
use csi_common::{
    Error, Kind, Result,
    contract::{BLANK, CONTENT_SOURCE, Chap, IscsiTarget, READONLY, context_flag},
    placed::VolumeHandle,
};
use csi_proto::v1::VolumeCapability;
use nix::mount::MsFlags;
use std::{collections::HashMap, net::SocketAddr, path::Path};

/// A NodeStageVolume request, stripped of gRPC.
///
/// The fields stay as the CO sent them and [`stage`] parses them itself, in the order the spec's
/// error rows ask for: missing or malformed fields are INVALID_ARGUMENT (volume id, staging
/// path, then capability), an id Carve never issued is NOT_FOUND *before* the contexts are read
/// (a CO probing with an unknown id sends no publish context), then the contexts and secrets.
/// Parsing any of them earlier, in `service`, would answer some bad requests with another code
/// or message.
#[derive(Debug, Clone, Copy)]
pub struct Stage<'a> {
    /// Volume id (untrusted).
    pub volume_id: &'a str,
    /// The staging path (untrusted; a directory for mount volumes; must lie under the kubelet
    /// directory, else INVALID_ARGUMENT).
    pub staging_path: &'a str,
    /// The capability, read by [`capability::parse`].
    pub capability: Option<&'a VolumeCapability>,
    /// ControllerPublishVolume's publish_context: the iSCSI target
    /// ([`IscsiTarget::from_contexts`]) and the [`READONLY`] and [`BLANK`] flags.
    pub publish_context: &'a HashMap<String, String>,
    /// CreateVolume's volume_context (the target's fallback keys, [`CONTENT_SOURCE`]).
    pub volume_context: &'a HashMap<String, String>,
    /// Secrets (CHAP keys): never logged, never written to a record.
    pub secrets: &'a HashMap<String, String>,
}

/// Runs NodeStageVolume.
pub async fn stage(core: &NodeCore, req: Stage<'_>) -> Result<()> {
    let volume = VolumeHandle::lookup(req.volume_id)?;
    let staging = paths::check_shape(req.staging_path, "staging_target_path")?;
    paths::confine(&staging, &core.kubelet_dir, "staging_target_path")?;
    let cap = capability::parse(req.capability)?;
    let volume = volume
        .ok_or_else(|| Error::not_found(format!("volume {:?} does not exist", req.volume_id)))?;
    let target = IscsiTarget::from_contexts(req.publish_context, req.volume_context)?;
    let chap = Chap::from_secrets(req.secrets)?;
    let content_source = req
        .volume_context
        .get(CONTENT_SOURCE)
        .cloned()
        .unwrap_or_default();
    let intent = Intent {
        readonly: cap.read_only_mode() || context_flag(req.publish_context, READONLY),
        blank: context_flag(req.publish_context, BLANK),
        content_source: &content_source,
    };

    let existing = core.records.load(&volume)?;
    if let Some(rec) = &existing {
        if rec.staging_path != staging {
            return Err(Error::already_exists(format!(
                "volume {volume} is already staged at {}",
                rec.staging_path.display()
            )));
        }
        if rec.access != cap.access
            || rec.access_mode != cap.mode as i32
            || rec.target != target.iqn.as_str()
        {
            return Err(Error::already_exists(format!(
                "volume {volume} is already staged at {} with an incompatible capability or target",
                staging.display()
            )));
        }
    }
    if let Access::Mount { .. } = cap.access {
        let dir = paths::validate(req.staging_path, "staging_target_path")?;
        if !dir.is_dir() {
            return Err(Error::invalid_argument(format!(
                "staging_target_path {} is not a directory",
                dir.display()
            )));
        }
    }
    let (portals, wwid) = match &existing {
        Some(rec) => (rec.portals(), rec.multipath.clone()),
        None => stage_paths::plan(core, &target)?,
    };
    let mut record = existing.unwrap_or_else(|| StageRecord {
        version: VERSION,
        volume_id: volume.to_string(),
        staging_path: staging.clone(),
        access: cap.access.clone(),
        access_mode: cap.mode as i32,
        target: target.iqn.to_string(),
        portal: portals[0],
        portals: if wwid.is_some() {
            portals.clone()
        } else {
            Vec::new()
        },
        multipath: wwid,
        lun: target.lun,
        serial: target.serial.clone(),
        device: None,
    });
    core.records.save(&record)?;

    // A path of a map fails over after a few seconds; a lone path waits as long as it can.
    let replacement = record
        .multipath
        .as_ref()
        .map(|_| conf::PATH_REPLACEMENT_TIMEOUT_S);
    let mut up = Vec::new();
    let mut new_login = false;
    let mut failed = Vec::new();
    for portal in &portals {
        let spec = RecordSpec {
            target: &target.iqn,
            portal: *portal,
            chap: chap.as_ref(),
            replacement_timeout: replacement,
        };
        match login_path(core, spec).await {
            Ok(login) => {
                new_login |= login == Login::LoggedIn;
                up.push(*portal);
            }
            Err(e) => failed.push((*portal, e)),
        }
    }
    if up.is_empty() {
        // Nothing attached: our record goes (each failed login already dropped its node record).
        let _ = core.records.remove(&volume);
        let (_, e) = failed.remove(0);
        return Err(e.context(format!("stage volume {volume}")));
    }
    for (portal, e) in &failed {
        tracing::warn!(volume = %volume, portal = %portal, error = %e,
            "stage: a path did not log in; staging over the others (the upkeep loop retries it)");
    }
    match attach(core, &mut record, &intent, &up).await {
        Ok(()) => Ok(()),
        Err(e) if new_login => {
            tracing::warn!(volume = %volume, error = %e, "stage failed after login, rolling back");
            if let Err(rollback) = unstage::teardown(core, &record).await {
                tracing::error!(volume = %volume, error = %rollback, "rollback of a failed stage failed");
            } else {
                let _ = core.records.remove(&volume);
            }
            Err(e.context(format!("stage volume {volume}")))
        }
        Err(e) => Err(e.context(format!("stage volume {volume}"))),
    }
}

/// Logs in to the target of `spec` at its portal unless a session exists; a failed login drops the node
/// record it created (it may hold CHAP secrets).
async fn login_path(core: &NodeCore, spec: RecordSpec<'_>) -> Result<Login> {
    let RecordSpec { target, portal, .. } = spec;
    if find_session(&core.initiator.sessions(), target, portal).is_some() {
        return Ok(Login::AlreadyLoggedIn);
    }
    core.initiator.prepare(spec).await?;
    match core.initiator.login(target, portal).await {
        Ok(login) => Ok(login),
        Err(e) => {
            let _ = core.initiator.delete_record(target, portal).await;
            Err(e)
        }
    }
}

/// What the CO and the controller said about the volume's content and access.
struct Intent<'a> {
    /// Nothing may write (reader-only mode or a write-protected LUN).
    readonly: bool,
    /// The controller vouches that the volume never held data.
    blank: bool,
    /// The volume's content source (`""`: none).
    content_source: &'a str,
}

/// After login: find and verify the disk of every path that is `up` (and assemble their map);
/// mount volumes get formatted (if new) and mounted.
async fn attach(
    core: &NodeCore,
    record: &mut StageRecord,
    intent: &Intent<'_>,
    up: &[SocketAddr],
) -> Result<()> {
    // Debug-level step times (ms since `attach` began, right after this call's logins), to see
    // where a stage's time goes.
    let started = std::time::Instant::now();
    let step = |what: &str| {
        tracing::debug!(
            step = what,
            ms = started.elapsed().as_millis(),
            "stage step"
        );
    };
    let device = match record.multipath.clone() {
        None => {
            let expected = record.expected()?;
            let device = find_disk(core, &expected).await?;
            step("disk found");
            verify_serial(core, &device, &expected.serial)?;
            step("serial verified");
            device
        }
        Some(wwid) => {
            let mut paths = Vec::new();
            for portal in up {
                let expected = record.expected_at(*portal)?;
                let disk = find_disk(core, &expected).await?;
                verify_serial(core, &disk, &expected.serial)?;
                matcher::check_wwid(&core.devices.kernel_wwid(&disk)?, &wwid)?;
                paths.push(disk);
            }
            let map = stage_paths::assemble(core, &wwid, &paths).await?;
            step("map assembled");
            verify_serial(core, &map, &record.serial)?;
            map
        }
    };
    if record.device.as_deref() != Some(device.name.as_str()) {
        record.device = Some(device.name.clone());
        core.records.save(record)?;
        step("stage record saved");
    }
    let Access::Mount { fs_type, flags } = &record.access else {
        return Ok(()); // block: login + verify only
    };
    let options = mount_options(fs_type, flags, intent.readonly)?;
    let table = core.mounter.table()?;
    step("mount table read");
    if let Some(m) = mounted_at(&table, &record.staging_path) {
        if m.source == device.path.to_string_lossy() {
            if let Some(problem) = core.host.fs_problem(m, !intent.readonly) {
                return Err(Error::failed_precondition(format!(
                    "volume is staged at {} but {problem}",
                    record.staging_path.display()
                )));
            }
            return Ok(()); // already staged
        }
        return Err(Error::already_exists(format!(
            "{} already has {} mounted on it",
            record.staging_path.display(),
            m.source
        )));
    }
    // One holder across the probe and the read check: they then read the disk once, not once
    // each (see `hold_open`). Dropped before anything formats or mounts the disk.
    let held = crate::filesystem::probe::hold_open(&device.path);
    step(if held.is_some() {
        "disk held open"
    } else {
        "disk not opened (the probe says why)"
    });
    let probe = core
        .probe
        .probe(&device.path)
        .await
        .map_err(|e| e.to_string());
    let read_ok = core.probe.read_check(&device.path).await.is_ok();
    drop(held);
    let decision = decide(&Facts {
        probe,
        read_ok,
        serial_matched: true,
        content_source: intent.content_source,
        fs_type,
        blank: intent.blank,
        readonly: intent.readonly,
    });
    tracing::info!(volume = %record.volume_id, device = %device.path.display(), decision = ?decision, "format decision");
    let grow = matches!(decision, Decision::Mount(_)) && !intent.readonly;
    match decision {
        Decision::Format => {
            let _permit = core
                .mkfs_permits
                .acquire()
                .await
                .map_err(|_| Error::unavailable("mkfs queue closed"))?;
            core.formatter.mkfs(fs_type, &device.path).await?;
        }
        Decision::Mount(_) if intent.readonly => {} // fsck would write
        Decision::Mount(found) => core.formatter.fsck(&found, &device.path).await?,
        Decision::Refuse(why) => return Err(Error::failed_precondition(why)),
    }
    core.mounter.mount_fs(&FsMount {
        device: &device.path,
        target: &record.staging_path,
        fs_type,
        options: &options,
    })?;
    if grow {
        grow_to_disk(core, fs_type, &device.path, &record.staging_path).await?;
    }
    Ok(())
}

/// Waits for the disk of `expected`, rescanning its session once on the way.
///
/// A session can exist without its disk: logged in with `node.session.scan = manual` in
/// iscsid.conf (iscsid then scans nothing), or its disk deleted behind its back. Waiting longer
/// never helps then, so after half of `device_timeout` without the disk, a session that shows no
/// disk for the LUN in sysfs is scanned once ([`crate::iscsi::Initiator::rescan_session`]) and
/// the other half is waited. A session whose disk is in sysfs (udev is only late) just gets the
/// rest of the wait; a session that vanished fails at once. The total wait stays
/// `device_timeout`.
pub async fn find_disk(core: &NodeCore, expected: &Expected) -> Result<Device> {
    let first = core.device_timeout / 2;
    match core.devices.wait_for(expected, first).await {
        Err(e) if e.kind() == Kind::DeadlineExceeded => {}
        found => return found,
    }
    let rest = core.device_timeout.saturating_sub(first);
    let sessions = core.initiator.sessions();
    let Some(session) = find_session(&sessions, &expected.target, expected.portal) else {
        return Err(Error::unavailable(format!(
            "the iSCSI session to {} at {} ended before its disk (LUN {}) appeared",
            expected.target, expected.portal, expected.lun
        )));
    };
    if session.disk(expected.lun).is_some() {
        return core.devices.wait_for(expected, rest).await;
    }
    let sid = session.sid;
    let host = core.initiator.rescan_session(sid).await?;
    tracing::warn!(
        target_iqn = %expected.target, portal = %expected.portal, lun = expected.lun,
        session = sid, scsi_host = %host,
        "the session has no disk for the LUN after {first:?}: rescanned it"
    );
    core.devices.wait_for(expected, rest).await.map_err(|e| {
        if e.kind() == Kind::DeadlineExceeded {
            Error::deadline_exceeded(format!(
                "{}, even after a rescan of session {sid} ({host})",
                e.message()
            ))
        } else {
            e
        }
    })
}

/// Grows an existing filesystem to fill its disk right after mounting it.
///
/// A restore or a clone larger than its source, or a volume expanded while it was not staged,
/// carries a filesystem smaller than its disk, and no CO calls NodeExpandVolume for those: the
/// spec leaves it to the plugin. The tools take no size, so they never shrink, and answer 0
/// when there is nothing to grow. On failure the staging mount is undone, so that the CO's
/// retry mounts and grows again instead of finding the volume "already staged".
async fn grow_to_disk(core: &NodeCore, fs_type: &str, device: &Path, staging: &Path) -> Result<()> {
    let Err(error) = core.formatter.grow(fs_type, device, staging).await else {
        return Ok(());
    };
    if let Err(unmount) = core.mounter.unmount(staging) {
        tracing::warn!(staging = %staging.display(), error = %unmount, "cannot undo the staging mount after a failed grow");
    }
    Err(error)
}

/// The options a staging mount of `fs_type` gets: the capability's flags, plus `nouuid` for XFS,
/// plus, for a `readonly` stage, `MS_RDONLY` and the option that stops the mount itself from
/// writing: ext4 `noload` (no journal replay, ext4(5)) and xfs `norecovery` (no log recovery,
/// xfs(5); it requires a read-only mount). A dirty filesystem mounted so shows its state as of
/// the last checkpoint, which is the most a write-protected disk can show without writing.
///
/// XFS refuses to mount a filesystem whose UUID is already mounted on the node, and a clone or
/// a restored snapshot carries its source's UUID: without `nouuid` a clone could not be staged
/// where its source is. `nouuid` skips only that check. The other way out, giving the clone a
/// new UUID with `xfs_admin -U generate` on its first stage, was rejected: it writes to the
/// user's filesystem before anyone mounted it; it needs a clean log, and a snapshot of a
/// mounted volume has a dirty one that only a mount replays (so: mount with `nouuid` anyway,
/// unmount, rewrite); and "first stage" needs a marker the node does not keep. What the check
/// guards against, one filesystem mounted twice through two paths to one disk, cannot happen
/// here: a volume has one stage record, one session and one staging mount on a node, its disk's
/// serial is verified, and mount volumes are never multi-node.
pub fn mount_options(fs_type: &str, flags: &[String], readonly: bool) -> Result<MountOptions> {
    let mut options = parse_flags(flags)?;
    let mut add = |extra: &str| {
        if !options.data.split(',').any(|o| o == extra) {
            options.data = match options.data.as_str() {
                "" => extra.to_string(),
                data => format!("{data},{extra}"),
            };
        }
    };
    if fs_type == "xfs" {
        add("nouuid");
    }
    if readonly {
        add(if fs_type == "xfs" {
            "norecovery"
        } else {
            "noload"
        });
        options.flags |= MsFlags::MS_RDONLY;
    }
    Ok(options)
}

/// The disk's serial must equal the volume's, from the kernel (VPD 0x80) and from udev.
fn verify_serial(core: &NodeCore, device: &Device, expected: &str) -> Result<()> {
    let kernel = core.devices.kernel_serial(device)?;
    matcher::check_serial(&kernel, expected, "VPD page 0x80")?;
    if let Some(udev) = &device.udev_serial {
        matcher::check_serial(udev, expected, "udev ID_SCSI_SERIAL")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::mount_options;
    use nix::mount::MsFlags;

    #[test]
    fn xfs_mounts_get_nouuid_once_and_other_filesystems_nothing_extra() {
        let o = |fs: &str, flags: &[&str]| {
            let flags: Vec<String> = flags.iter().map(std::string::ToString::to_string).collect();
            mount_options(fs, &flags, false).unwrap().data
        };
        assert_eq!(o("xfs", &[]), "nouuid");
        assert_eq!(
            o("xfs", &["noatime", "logbsize=256k"]),
            "logbsize=256k,nouuid"
        );
        assert_eq!(o("xfs", &["nouuid"]), "nouuid");
        assert_eq!(o("ext4", &[]), "");
        assert_eq!(o("ext4", &["data=ordered"]), "data=ordered");
        assert!(mount_options("xfs", &["bind".into()], false).is_err());
    }

    #[test]
    fn readonly_stages_mount_ro_without_journal_replay() {
        let ext4 = mount_options("ext4", &["noatime".into()], true).unwrap();
        assert_eq!(ext4.data, "noload");
        assert!(
            ext4.flags
                .contains(MsFlags::MS_RDONLY | MsFlags::MS_NOATIME)
        );
        let xfs = mount_options("xfs", &[], true).unwrap();
        assert_eq!(xfs.data, "nouuid,norecovery");
        assert!(xfs.flags.contains(MsFlags::MS_RDONLY));
        assert!(
            !mount_options("ext4", &[], false)
                .unwrap()
                .flags
                .contains(MsFlags::MS_RDONLY)
        );
    }
}
