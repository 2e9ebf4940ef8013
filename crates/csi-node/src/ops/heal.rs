//! Session self-heal, one round per upkeep tick: every recorded path of every staged volume
//! gets a logged-in session with its disk, and a multipath map gets every such disk back.
//!
//! Invariants: a volume is healed only under its per-volume guard, taken without waiting (a
//! volume with an RPC in flight waits for the next round), and from its stage record re-read
//! under the guard; a session that exists but is not logged in is iscsid's to recover (it is
//! reported, not touched); a missing session is logged in again only through its existing node
//! record (CHAP secrets live only there: without the record nothing is logged in); a disk goes
//! back into a map only after its serial and WWID are verified, as at stage. Each restoration
//! is logged and counted in `carve_node_sessions_restored_total{action}`.
//!
//! The iSCSI sessions are read once per round and serve every healthy path; before anything is
//! done for a path (a login, a rescan, a disk put back into its map) they are read again, since
//! an RPC may have changed its volume's sessions before the guard was taken. A round reads them
//! once plus once per path in trouble, not once or twice per path.

use super::NodeCore;
use crate::{
    device::{Device, matcher},
    gauges,
    iscsi::{Session, find_session},
    records::StageRecord,
};
use csi_common::{Result, guard::OperationGuards, ids::Iqn, placed::VolumeHandle};

/// What one self-heal round did and saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Heal {
    /// Paths logged in again, rescanned or put back in their map (`"<volume> at <portal>: <what>"`).
    pub restored: Vec<String>,
    /// Paths still not working after this round, with the reason.
    pub degraded: Vec<String>,
}

/// One round over every stage record.
pub async fn heal(core: &NodeCore, guards: &OperationGuards) -> Heal {
    let mut done = Heal::default();
    let (records, _) = gauges::stage_records(core.records.dir());
    let round = core.initiator.sessions();
    for listed in records {
        let Ok(volume) = VolumeHandle::parse(&listed.volume_id) else {
            continue;
        };
        let Ok(_guard) = guards.try_acquire(volume.local().as_str()) else {
            continue; // an RPC on this volume is in flight: next round
        };
        let Ok(Some(record)) = core.records.load(&volume) else {
            continue; // unstaged meanwhile
        };
        if let Err(e) = heal_volume(core, &record, &round, &mut done).await {
            tracing::warn!(volume = %volume, error = %e, "upkeep: self-heal of a staged volume failed");
            done.degraded.push(format!("{volume}: {e}"));
        }
    }
    done
}

async fn heal_volume(
    core: &NodeCore,
    record: &StageRecord,
    round: &[Session],
    done: &mut Heal,
) -> Result<()> {
    let target = Iqn::parse(&record.target)?;
    let volume = &record.volume_id;
    for portal in record.portals() {
        let healthy = |sessions: &[Session]| {
            find_session(sessions, &target, portal)
                .is_some_and(|s| s.state == "LOGGED_IN" && s.disk(record.lun).is_some())
        };
        let fresh;
        let sessions = if healthy(round) {
            round
        } else {
            fresh = core.initiator.sessions();
            &fresh
        };
        let what = format!("{volume} at {portal}");
        let before = done.restored.len();
        match find_session(sessions, &target, portal) {
            Some(s) if s.state != "LOGGED_IN" => {
                done.degraded.push(format!(
                    "{what}: session {} is {} (iscsid is recovering it)",
                    s.sid, s.state
                ));
                continue;
            }
            Some(s) if s.disk(record.lun).is_none() => {
                let host = core.initiator.rescan_session(s.sid).await?;
                tracing::warn!(volume, portal = %portal, session = s.sid, scsi_host = %host,
                    "upkeep: a staged volume's session had no disk for its LUN: rescanned it");
                restored(done, &what, "rescan");
            }
            Some(_) => {}
            None => {
                let has_record = core
                    .initiator
                    .records()
                    .iter()
                    .any(|(t, p)| *t == record.target && *p == portal);
                if !has_record {
                    tracing::warn!(volume, portal = %portal,
                        "upkeep: a staged volume's path has no session and no node record: cannot log in again");
                    done.degraded
                        .push(format!("{what}: no session and no node record"));
                    continue;
                }
                match core.initiator.login(&target, portal).await {
                    Ok(login) => {
                        tracing::warn!(volume, portal = %portal, login = ?login,
                            "upkeep: a staged volume's path had no session: logged in again");
                        restored(done, &what, "login");
                    }
                    Err(e) => {
                        tracing::warn!(volume, portal = %portal, error = %e,
                            "upkeep: a staged volume's path has no session and the login failed");
                        done.degraded.push(format!("{what}: no session ({e})"));
                        continue;
                    }
                }
            }
        }
        // A path restored just now is left to udev and multipathd until the next round.
        if let Some(wwid) = &record.multipath
            && done.restored.len() == before
        {
            rejoin_map(core, record, sessions, &target, portal, wwid, done).await?;
        }
    }
    Ok(())
}

/// Puts the path's disk back into the volume's map when multipathd has not done so by itself (it
/// does when the WWID is registered and udev announced the disk), after verifying it. `sessions`
/// may be the round's reading: a disk out of its map is looked up again in a fresh one.
async fn rejoin_map(
    core: &NodeCore,
    record: &StageRecord,
    sessions: &[Session],
    target: &Iqn,
    portal: std::net::SocketAddr,
    wwid: &str,
    done: &mut Heal,
) -> Result<()> {
    let Some(disk) = find_session(sessions, target, portal).and_then(|s| s.disk(record.lun)) else {
        return Ok(());
    };
    let Some(map) = core.multipath.map(wwid) else {
        done.degraded.push(format!(
            "{} at {portal}: the multipath map of {wwid} is gone",
            record.volume_id
        ));
        return Ok(());
    };
    let paths = core.multipath.paths_of(&map);
    if paths.iter().any(|p| p == disk) {
        return Ok(());
    }
    // Out of its map by `sessions`, which may be the round's reading from before the guard: read
    // again, so nothing is done for a session that has gone or changed since.
    let fresh = core.initiator.sessions();
    let Some(disk) = find_session(&fresh, target, portal).and_then(|s| s.disk(record.lun)) else {
        return Ok(());
    };
    if paths.iter().any(|p| p == disk) {
        return Ok(());
    }
    let disk = Device::from_name(disk);
    matcher::check_serial(
        &core.devices.kernel_serial(&disk)?,
        &record.serial,
        "VPD page 0x80",
    )?;
    matcher::check_wwid(&core.devices.kernel_wwid(&disk)?, wwid)?;
    core.multipath.assemble(std::slice::from_ref(&disk)).await?;
    tracing::warn!(volume = %record.volume_id, portal = %portal, device = %disk.name, map = %map.name,
        "upkeep: put a staged volume's path back into its multipath map");
    restored(
        done,
        &format!("{} at {portal}", record.volume_id),
        "map_path",
    );
    Ok(())
}

fn restored(done: &mut Heal, what: &str, action: &'static str) {
    metrics::counter!("carve_node_sessions_restored_total", "action" => action).increment(1);
    done.restored.push(format!("{what}: {action}"));
}
