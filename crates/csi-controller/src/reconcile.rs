//! Startup reconciliation: LIO is rebuilt from LVM after a storage-host reboot wiped it.
//!
//! Invariants: LVM is the source of truth. Every Carve LV is activated and exported again; every
//! publication recorded in its tags gets its ACL back, with the CHAP credentials found for that
//! (target, initiator) in the saveconfig file. Tags never hold secrets, only whether a
//! publication used CHAP: a CHAP publication without saved credentials gets no ACL (never an
//! ACL without the authentication it had); it is counted, and since ListVolumes reports
//! published nodes from the ACLs, external-attacher's resync publishes it again with the
//! secrets. An existing ACL is set again only where it grants other than its publication
//! records (write protection, CHAP enforced: restored from a stale or hand-edited
//! saveconfig.json, or changed by hand); one that should enforce CHAP and whose credentials are
//! not saved is removed instead. ACLs follow the record and nothing else: an ACL
//! of a Carve volume that no publication tag grants (revoked before a crash, or brought back by
//! a restore from a stale saveconfig.json) is removed, logged and counted
//! (`carve_reconcile_removed_acls_total`), with the volume's guard held and its record read
//! again. Exports whose LV is gone are logged and counted (`carve_reconcile_orphan_exports`)
//! for an operator to look at, never deleted.
//!
//! Cost: one read of LIO's state, then per volume only its own objects (the configfs backend
//! finds HBAs from its index, [`crate::lio::hba_index`]), so the configfs work is linear in
//! the volumes; volumes are restored [`RESTORE_PARALLELISM`] at a time, each under its guard.
//! The controller serves meanwhile: [`Restoration`] keeps Probe not ready and RPCs on volumes
//! not restored yet `Unavailable` until a pass completes. saveconfig.json is not rewritten by
//! the saver's coalesced saves during the pass (held back: one save at its end), so it keeps
//! the credentials it held; a save that an RPC waits for meanwhile (ControllerUnpublish) or
//! the save at shutdown holds only the ACLs restored so far: should the controller stop
//! before the pass ends, the next start lacks the others' CHAP credentials and leaves those
//! ACLs to the CO's republish, as above (never an ACL without its CHAP).

use crate::{
    lio::{
        AclSpec, LioState,
        saver::{ReadMark, SaveHandle},
        verify_export,
    },
    lvm::tags::Publication,
    ops::{Ctx, volume},
    restoration::Restoration,
};
use csi_common::{
    Error, Result,
    contract::Chap,
    guard::OperationGuards,
    ids::{Iqn, NodeId, VolumeId},
};
use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
    time::Instant,
};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

/// What reconciliation found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Carve volumes in LVM.
    pub volumes: usize,
    /// Exports created or completed.
    pub restored_exports: usize,
    /// ACLs created from publication tags.
    pub restored_acls: usize,
    /// CHAP publications whose credentials were not saved: left for the CO to publish again.
    pub awaiting_chap: usize,
    /// Volumes still not exported (an error was logged for each).
    pub unexported: Vec<String>,
    /// Carve targets in LIO whose LV is gone.
    pub orphan_exports: Vec<String>,
    /// ACLs removed because no publication in the record grants them.
    pub removed_acls: usize,
    /// Volumes skipped because an RPC held their guard (the pass is retried).
    pub busy: Vec<String>,
}

/// Saved CHAP credentials by (target IQN, initiator IQN).
pub type SavedChap = HashMap<(String, String), Chap>;

/// How many volumes are restored at once. A restore is an `lvchange -ay` when the LV is not
/// active (the per-VG queue runs those one at a time anyway), a few dozen configfs calls (the
/// kernel serialises most behind LIO's own mutexes) and, with the targetcli backend, a Python
/// process of about 30 MiB: a handful at once hides each one's latency, while more would only
/// add memory and CPU contention on the storage host, which also serves the volumes' I/O.
pub const RESTORE_PARALLELISM: usize = 8;

/// A read of LIO's whole state for a pass, with when it began as the saveconfig writer counts
/// its saves (so that the pass's save can start from it: [`SaveHandle::request_since`]).
#[derive(Debug)]
pub struct LioRead {
    mark: Option<ReadMark>,
    state: LioState,
}

impl LioRead {
    /// Reads LIO's state now.
    ///
    /// # Errors
    /// LIO's state cannot be read.
    pub async fn now(ctx: &Ctx) -> Result<Self> {
        let mark = ctx.saver().map(SaveHandle::mark);
        let state = ctx.lio.state().await?;
        Ok(Self { mark, state })
    }

    /// The number of targets read.
    pub fn targets(&self) -> usize {
        self.state.targets.len()
    }
}

/// Reconciles LIO with LVM. `chap` maps (target IQN, initiator IQN) to saved credentials.
/// For use before the service runs; once it serves, use [`reconcile_serving`].
pub async fn reconcile(ctx: &Ctx, chap: &SavedChap) -> Result<Report> {
    reconcile_guarded(ctx, chap, &OperationGuards::new("volume")).await
}

/// [`reconcile_serving`] with no restoration record to keep.
pub async fn reconcile_guarded(
    ctx: &Ctx,
    chap: &SavedChap,
    guards: &OperationGuards,
) -> Result<Report> {
    let chap = Arc::new(chap.clone());
    let restoration = Restoration::default();
    reconcile_serving(ctx, chap, guards, &restoration, RESTORE_PARALLELISM, None).await
}

/// [`reconcile`] beside live RPCs: each volume is handled holding its per-volume guard (the
/// one the RPCs take; a volume with an RPC in flight is skipped, and the pass then ends in
/// `Unavailable` so the caller retries), and its ACLs are changed only after its record (tags)
/// and its LIO state are read again under that guard: an ACL is granted only for a
/// publication the record holds now, and an ACL the record does not hold is removed.
///
/// Volumes are restored `parallelism` at a time (see [`RESTORE_PARALLELISM`]), each touching
/// only its own target and storage object, from one read of LIO's state: `read`, when the
/// caller read it before `restoration` listed anything (start-up reads it while the ledger
/// seeds; no RPC on a volume is served until the listing), or one read here after the listing.
/// The saveconfig writer's coalesced saves are held back during the pass, which ends with one
/// save starting from that read. `restoration` learns
/// the volumes listed and each one restored, and is complete once the whole pass succeeded; a
/// volume whose record or LIO state cannot be read again stays in it and fails the pass.
pub async fn reconcile_serving(
    ctx: &Ctx,
    chap: Arc<SavedChap>,
    guards: &OperationGuards,
    restoration: &Restoration,
    parallelism: usize,
    read: Option<LioRead>,
) -> Result<Report> {
    ctx.lvm()?;
    // One save at the end of the pass, not saves rereading its restores beside it.
    let hold = match ctx.saver() {
        Some(saver) => Some(saver.hold().await),
        None => None,
    };
    let started = Instant::now();
    let volumes = volume::list(ctx).await?;
    restoration.listed(volumes.iter().map(|v| v.id.as_str()));
    let listed_ms = started.elapsed().as_millis();
    let LioRead { mark, state } = match read {
        Some(read) => read,
        None => LioRead::now(ctx).await?,
    };
    let before = Arc::new(state);
    let lio_read_ms = started.elapsed().as_millis() - listed_ms;
    let mut report = Report {
        volumes: volumes.len(),
        ..Report::default()
    };
    let ids: BTreeSet<String> = volumes.iter().map(|v| v.id.to_string()).collect();
    let mut queue = volumes.into_iter();
    let mut running = JoinSet::new();
    let mut failure = None;
    loop {
        while running.len() < parallelism.max(1)
            && let Some(listed) = queue.next()
        {
            let (ctx, chap, guards) = (ctx.clone(), Arc::clone(&chap), guards.clone());
            let (before, restoration) = (Arc::clone(&before), restoration.clone());
            running.spawn(async move {
                let mut part = Report::default();
                let result = restore(&ctx, &chap, &guards, &before, &listed, &mut part).await;
                // The guard is released: RPCs on the volume may run from now on.
                if result.is_ok() && part.busy.is_empty() {
                    restoration.restored(listed.id.as_str());
                }
                (
                    part,
                    result.map_err(|e| e.context(format!("volume {}", listed.id))),
                )
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        match joined {
            Ok((part, result)) => {
                report.absorb(part);
                if let Err(e) = result {
                    error!(error = %e, "cannot reconcile a volume's ACLs; the pass is retried");
                    failure.get_or_insert(e);
                }
            }
            Err(e) => {
                failure.get_or_insert(Error::internal(format!("restore task failed: {e}")));
            }
        }
    }
    let restores_ms = started.elapsed().as_millis() - listed_ms - lio_read_ms;
    report.unexported.sort();
    report.busy.sort();
    let prefix = format!("{}:", ctx.settings.iqn_prefix);
    for target in &before.targets {
        let Some(id) = target.iqn.strip_prefix(&prefix) else {
            continue;
        };
        if VolumeId::parse(id).is_ok() && !ids.contains(id) {
            warn!(target = %target.iqn, "LIO export without its logical volume (left in place)");
            report.orphan_exports.push(target.iqn.clone());
        }
    }
    // Always: one save once the pass is over, so that the file matches LIO from then on; it
    // starts from the state this pass read (rereading only what changed since, or everything
    // when most exports did), and is not left to the first ControllerUnpublish (which waits for
    // its save).
    if let (Some(saver), Some(mark)) = (ctx.saver(), mark) {
        let before = Arc::try_unwrap(before).unwrap_or_else(|shared| (*shared).clone());
        saver.request_since(mark, before);
    }
    drop(hold);
    if report.removed_acls > 0 {
        // A revoked grant must not survive in saveconfig.json either.
        if let Err(e) = ctx.lio_saved().await {
            error!(error = %e, "cannot save the LIO configuration after removing ACLs");
        }
    }
    metrics::gauge!("carve_reconcile_volumes").set(report.volumes as f64);
    metrics::gauge!("carve_reconcile_restored_exports").set(report.restored_exports as f64);
    metrics::gauge!("carve_reconcile_restored_acls").set(report.restored_acls as f64);
    metrics::gauge!("carve_reconcile_acls_awaiting_chap").set(report.awaiting_chap as f64);
    metrics::gauge!("carve_reconcile_unexported_volumes").set(report.unexported.len() as f64);
    metrics::gauge!("carve_reconcile_orphan_exports").set(report.orphan_exports.len() as f64);
    metrics::counter!("carve_reconcile_removed_acls_total").increment(report.removed_acls as u64);
    info!(
        volumes = report.volumes,
        restored_exports = report.restored_exports,
        restored_acls = report.restored_acls,
        awaiting_chap = report.awaiting_chap,
        unexported = report.unexported.len(),
        orphan_exports = report.orphan_exports.len(),
        removed_acls = report.removed_acls,
        busy = report.busy.len(),
        listed_ms,
        lio_read_ms,
        restores_ms,
        "reconciled LIO with LVM"
    );
    if let Some(e) = failure {
        return Err(e);
    }
    if !report.busy.is_empty() {
        return Err(Error::unavailable(format!(
            "reconciliation skipped volumes with an operation in flight: {:?}",
            report.busy
        )));
    }
    restoration.complete();
    Ok(report)
}

/// Restores one listed volume under its guard: its export if `before` does not hold it
/// complete, then its ACLs if they differ from its record (decided on a fresh read).
async fn restore(
    ctx: &Ctx,
    chap: &SavedChap,
    guards: &OperationGuards,
    before: &LioState,
    listed: &volume::Volume,
    report: &mut Report,
) -> Result<()> {
    let Ok(_guard) = guards.try_acquire(listed.id.as_str()) else {
        report.busy.push(listed.id.to_string());
        return Ok(());
    };
    let lvm = ctx.lvm()?;
    let spec = listed.export_spec(ctx, lvm.vg_name());
    if verify_export(before, &spec).is_err() {
        let restored = async {
            if !listed.lv.is_active() {
                lvm.activate(&listed.lv_name()).await?;
            }
            ctx.lio.ensure_export(&spec).await
        };
        match restored.await {
            Ok(()) => {
                info!(volume = %listed.id, target = %spec.target, "restored export");
                report.restored_exports += 1;
            }
            Err(e) => {
                error!(volume = %listed.id, error = %e, "cannot restore export");
                report.unexported.push(listed.id.to_string());
                return Ok(());
            }
        }
    }
    if acls_match(before, &spec.target, listed) {
        return Ok(());
    }
    // Something to grant or revoke: decide from the record and LIO as they are now.
    let Some(vol) = volume::find(ctx, &listed.id).await? else {
        return Ok(());
    };
    let now = ctx.lio.volume_state(&spec.target, "").await?;
    reconcile_acls(ctx, chap, &vol, &now, report).await;
    Ok(())
}

impl Report {
    /// Adds what one volume's restore found and did.
    fn absorb(&mut self, part: Report) {
        self.restored_exports += part.restored_exports;
        self.restored_acls += part.restored_acls;
        self.awaiting_chap += part.awaiting_chap;
        self.removed_acls += part.removed_acls;
        self.unexported.extend(part.unexported);
        self.busy.extend(part.busy);
    }
}

/// Whether the ACLs of `target` in `state` are exactly the publications in `vol`'s record,
/// each granting what its publication records ([`acl_conforms`]).
fn acls_match(state: &LioState, target: &Iqn, vol: &volume::Volume) -> bool {
    acl_initiators(state, target) == recorded_nodes(vol)
        && vol
            .record
            .published
            .iter()
            .all(|p| acl_conforms(state, target, p))
}

/// Whether `state` holds an ACL on `target` for `publication`'s node that grants what the
/// publication records and nothing more: LUN 0 mapped, write-protected exactly when the
/// publication is read-only, and CHAP enforced (the target's `authentication`, the ACL's user
/// and password set) when it is a CHAP publication. (The target-wide `authentication` is not
/// turned off for a publication without CHAP here: that would only let a node in, and would
/// unfence another publication of the same target.) An ACL restored from a stale or
/// hand-edited saveconfig.json, or changed by hand, can differ from its record in any of these.
fn acl_conforms(state: &LioState, target: &Iqn, publication: &Publication) -> bool {
    let Some(t) = state.target(target.as_str()) else {
        return false;
    };
    let Some(acl) = t
        .acls
        .iter()
        .find(|a| a.initiator == publication.node.as_str())
    else {
        return false;
    };
    let chap_set = acl.auth.userid.is_some() && acl.auth.password.is_some();
    acl.mapped_lun0
        && acl.write_protect == publication.readonly
        && (!publication.chap || (t.authentication && chap_set))
}

/// The initiators holding an ACL on `target` in `state`.
fn acl_initiators<'a>(state: &'a LioState, target: &Iqn) -> BTreeSet<&'a str> {
    state
        .target(target.as_str())
        .map(|t| t.acls.iter().map(|a| a.initiator.as_str()).collect())
        .unwrap_or_default()
}

/// The nodes `vol`'s record is published to.
fn recorded_nodes(vol: &volume::Volume) -> BTreeSet<&str> {
    vol.record
        .published
        .iter()
        .map(|p| p.node.as_str())
        .collect()
}

/// Grants every publication of `vol`'s record that has no ACL in `state`, sets again every ACL
/// that grants other than its publication records ([`acl_conforms`]: write protection, CHAP),
/// and removes every ACL the record does not hold. A CHAP publication whose ACL does not
/// enforce CHAP and whose credentials are not saved loses its ACL (fail closed: the CO's next
/// ControllerPublish brings the secrets).
async fn reconcile_acls(
    ctx: &Ctx,
    chap: &SavedChap,
    vol: &volume::Volume,
    state: &LioState,
    report: &mut Report,
) {
    let target = vol.target_iqn(&ctx.settings.iqn_prefix);
    let existing = acl_initiators(state, &target);
    for publication in &vol.record.published {
        let exists = existing.contains(publication.node.as_str());
        if exists && acl_conforms(state, &target, publication) {
            continue;
        }
        let key = (target.to_string(), publication.node.to_string());
        if publication.chap && !chap.contains_key(&key) {
            if exists {
                // It lets in whoever claims the node's IQN without CHAP: never keep it.
                remove_unlike(ctx, vol, &target, publication, report).await;
            }
            warn!(volume = %vol.id, node = %publication.node,
                "CHAP credentials not saved: ACL left for the CO to publish again with its secrets");
            report.awaiting_chap += 1;
            continue;
        }
        if exists {
            warn!(volume = %vol.id, node = %publication.node, readonly = publication.readonly,
                chap = publication.chap, "an ACL grants other than its publication records: setting it again");
        }
        let acl = AclSpec {
            initiator: publication.node.initiator(),
            readonly: publication.readonly,
            chap: chap.get(&key).cloned(),
        };
        match ctx.lio.ensure_acl(&target, &acl).await {
            Ok(()) => {
                info!(volume = %vol.id, node = %publication.node, chap = acl.chap.is_some(), "restored ACL");
                report.restored_acls += 1;
            }
            Err(e) => {
                error!(volume = %vol.id, node = %publication.node, error = %e, "cannot restore ACL");
                if exists {
                    // Fail closed: an ACL that could not be set to its record goes.
                    remove_unlike(ctx, vol, &target, publication, report).await;
                }
            }
        }
    }
    let recorded = recorded_nodes(vol);
    for initiator in existing.iter().filter(|i| !recorded.contains(*i)) {
        let removed = match NodeId::parse(initiator) {
            Ok(node) => ctx.lio.remove_acl(&target, &node.initiator()).await,
            Err(e) => Err(e),
        };
        match removed {
            Ok(_) => {
                warn!(volume = %vol.id, node = %initiator,
                    "removed an ACL no publication in the record grants (revoked, or restored from a stale file)");
                report.removed_acls += 1;
            }
            Err(e) => {
                error!(volume = %vol.id, node = %initiator, error = %e, "cannot remove an unrecorded ACL");
            }
        }
    }
}

/// Removes the ACL of `publication` on `target`, which grants other than the publication
/// records and cannot be set to it: logged and counted in `removed_acls`; a failure to remove
/// it is logged as an error.
async fn remove_unlike(
    ctx: &Ctx,
    vol: &volume::Volume,
    target: &Iqn,
    publication: &Publication,
    report: &mut Report,
) {
    match ctx
        .lio
        .remove_acl(target, &publication.node.initiator())
        .await
    {
        Ok(_) => {
            warn!(volume = %vol.id, node = %publication.node,
                "removed an ACL that grants other than its publication records and cannot be set to it");
            report.removed_acls += 1;
        }
        Err(e) => {
            error!(volume = %vol.id, node = %publication.node, error = %e,
                "cannot remove an ACL that grants other than its publication records");
        }
    }
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
