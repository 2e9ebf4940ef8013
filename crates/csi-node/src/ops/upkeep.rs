//! The upkeep loop, run once before the node serves and then every `--upkeep-interval`: the
//! stale-session cleanup here, then the staged volumes' path self-heal ([`super::heal`]).
//!
//! A session or node record of one of Carve's own targets (`<target IQN prefix>:<volume id>`,
//! through the plugin's iface) that no stage record owns is debris: a plugin or node crash
//! between a login and its rollback, a stage record removed by hand, a session made by hand.
//! Such a session keeps a disk attached, and a node record may keep CHAP secrets on disk.
//!
//! Invariants: a volume is swept only under its per-volume guard (taken without waiting; a
//! volume with an RPC in flight is skipped this round), so the sweep never races a stage or an
//! unstage (the guard is keyed by the local id the target ends with, for a placed id
//! `AGENT:VG:csi-…` as for a bare one: [`csi_common::placed::guard_key`]); ownership is decided
//! by the stage records of that local id, under either form, after the guard is held; a session is
//! removed only when none of its disks is mounted (in any mount namespace), bind-mounted as a
//! device, held by a stacked device (`holders/`) or open exclusively, and otherwise it is left
//! alone with a warning on every sweep; removal is the unstage order (flush, delete the SCSI
//! device, log out, delete the node record) and each removal is logged. Other initiators'
//! sessions (another iface) and other targets are never touched.

use super::{
    NodeCore,
    detach::{self, Allowed, Flush},
};
use crate::iscsi::Session;
use csi_common::{
    Result,
    guard::OperationGuards,
    ids::{Iqn, VolumeId},
};
use std::{collections::BTreeSet, net::SocketAddr, sync::Arc, time::Duration};

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// Stale sessions logged out (`"<target> at <portal>"`).
    pub sessions_removed: Vec<String>,
    /// Stale node records deleted (`"<target> at <portal>"`).
    pub records_removed: Vec<String>,
    /// Stale sessions left in place because their disk is in use, with the reason.
    pub in_use: Vec<String>,
}

/// The volume of a Carve target `target` under `prefix`, if it is one.
pub fn own_volume(prefix: &Iqn, target: &str) -> Option<VolumeId> {
    let id = target.strip_prefix(prefix.as_str())?.strip_prefix(':')?;
    VolumeId::lookup(id).ok().flatten()
}

/// Whether a stage record holds the volume whose local id is `volume` (the one its target IQN
/// ends with), under its bare id or a placed one (`AGENT:VG:<volume>`); an unreadable record
/// is an error, which leaves the session alone.
fn staged(core: &NodeCore, volume: &VolumeId) -> Result<bool> {
    for holder in core.records.holders_of(volume)? {
        if core.records.load(&holder)?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One sweep: removes every stale session and node record of Carve's targets under `prefix`.
/// Errors on one volume are logged and the sweep goes on.
pub async fn sweep(core: &NodeCore, guards: &OperationGuards, prefix: &Iqn) -> Sweep {
    let mut done = Sweep::default();
    let sessions = core.initiator.sessions();
    let mut with_session = BTreeSet::new();
    for session in &sessions {
        let Some(volume) = own_volume(prefix, &session.target) else {
            continue;
        };
        let Some(portal) = session.portal else {
            continue;
        };
        with_session.insert((session.target.clone(), portal));
        let Ok(_guard) = guards.try_acquire(volume.as_str()) else {
            continue; // an RPC on this volume is in flight: next round
        };
        match staged(core, &volume) {
            Ok(false) => {}
            Ok(true) => continue,
            Err(e) => {
                tracing::warn!(volume = %volume, error = %e, "upkeep: unreadable stage record; leaving its session alone");
                continue;
            }
        }
        let what = format!("{} at {portal}", session.target);
        match remove_session(core, session, portal).await {
            Ok(None) => {
                tracing::warn!(volume = %volume, target = %session.target, portal = %portal,
                    sid = session.sid, "upkeep: logged out a stale iSCSI session that no stage record owns");
                metrics::counter!("carve_node_stale_removed_total", "kind" => "session")
                    .increment(1);
                done.sessions_removed.push(what);
            }
            Ok(Some(why)) => {
                tracing::warn!(volume = %volume, target = %session.target, portal = %portal,
                    sid = session.sid, reason = %why, "upkeep: a stale iSCSI session is in use; leaving it");
                done.in_use.push(format!("{what}: {why}"));
            }
            Err(e) => {
                tracing::error!(volume = %volume, target = %session.target, portal = %portal,
                    error = %e, "upkeep: cannot remove a stale iSCSI session");
            }
        }
    }
    for (target, portal) in core.initiator.records() {
        let Some(volume) = own_volume(prefix, &target) else {
            continue;
        };
        if with_session.contains(&(target.clone(), portal)) {
            continue; // its session was handled above (removal deletes the record too)
        }
        let Ok(_guard) = guards.try_acquire(volume.as_str()) else {
            continue;
        };
        if !matches!(staged(core, &volume), Ok(false)) {
            continue;
        }
        // A session may have appeared since the listing: only a record without one goes.
        let live = core.initiator.sessions();
        if live
            .iter()
            .any(|s| s.target == target && s.portal.is_none_or(|p| p == portal))
        {
            continue;
        }
        let Ok(iqn) = Iqn::parse(&target) else {
            continue;
        };
        match core.initiator.delete_record(&iqn, portal).await {
            Ok(_) => {
                tracing::warn!(volume = %volume, target = %target, portal = %portal,
                    "upkeep: deleted a stale iscsiadm node record that no stage record owns");
                metrics::counter!("carve_node_stale_removed_total", "kind" => "record")
                    .increment(1);
                done.records_removed.push(format!("{target} at {portal}"));
            }
            Err(e) => tracing::error!(target = %target, portal = %portal, error = %e,
                "upkeep: cannot delete a stale node record"),
        }
    }
    done
}

/// Removes one stale session unless a disk of it is in use (answered as `Some(why)`), through
/// the same detach as unstage ([`detach::detach_path`]; best-effort flush: nobody's data).
async fn remove_session(
    core: &NodeCore,
    session: &Session,
    portal: SocketAddr,
) -> Result<Option<String>> {
    for (_, disk) in &session.disks {
        if let Some(why) = detach::in_use(
            core,
            disk,
            Allowed {
                exclusive: true,
                ..Allowed::default()
            },
        )? {
            return Ok(Some(why));
        }
    }
    let iqn = Iqn::parse(&session.target)?;
    detach::detach_path(core, &iqn, portal, None, Flush::BestEffort).await?;
    Ok(None)
}

/// Runs a sweep and a self-heal round now and then every `interval` in a background task, for
/// the life of the process. An `interval` of zero disables all of it.
pub async fn start(
    core: Arc<NodeCore>,
    guards: OperationGuards,
    prefix: Iqn,
    interval: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    if interval.is_zero() {
        tracing::info!("upkeep disabled (--upkeep-interval 0)");
        return None;
    }
    let first = sweep(&core, &guards, &prefix).await;
    let healed = super::heal::heal(&core, &guards).await;
    tracing::info!(
        sessions_removed = first.sessions_removed.len(),
        records_removed = first.records_removed.len(),
        in_use = first.in_use.len(),
        paths_restored = healed.restored.len(),
        paths_degraded = healed.degraded.len(),
        "upkeep: start-up sweep done"
    );
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate: the start-up sweep was it
        loop {
            tick.tick().await;
            let done = sweep(&core, &guards, &prefix).await;
            let healed = super::heal::heal(&core, &guards).await;
            tracing::debug!(?done, ?healed, "upkeep sweep");
        }
    }))
}
