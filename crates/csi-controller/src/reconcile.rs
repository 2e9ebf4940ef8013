//! Startup reconciliation: LIO is rebuilt from LVM after a storage-host reboot wiped it.
//!
//! Invariants: LVM is the source of truth. Every Carve LV is activated and exported again; every
//! publication recorded in its tags gets its ACL back, with the CHAP credentials found for that
//! (target, initiator) in the saveconfig file. Tags never hold secrets, only whether a
//! publication used CHAP: a CHAP publication without saved credentials gets no ACL (never an
//! ACL without the authentication it had); it is counted, and since ListVolumes reports
//! published nodes from the ACLs, external-attacher's resync publishes it again with the
//! secrets. Existing ACLs are never rewritten. Nothing is deleted: exports whose LV is gone are logged and counted
//! (`carve_reconcile_orphan_exports`) for an operator to look at.

use crate::{
    lio::{AclSpec, verify_export},
    ops::{Ctx, volume},
};
use csi_common::{Result, contract::Chap, ids::VolumeId};
use std::collections::{BTreeSet, HashMap};
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
}

/// Reconciles LIO with LVM. `chap` maps (target IQN, initiator IQN) to saved credentials.
pub async fn reconcile(ctx: &Ctx, chap: &HashMap<(String, String), Chap>) -> Result<Report> {
    let lvm = ctx.lvm()?;
    let volumes = volume::list(ctx).await?;
    let before = ctx.lio.state().await?;
    let mut report = Report {
        volumes: volumes.len(),
        ..Report::default()
    };
    for vol in &volumes {
        let spec = vol.export_spec(ctx, lvm.vg_name());
        if verify_export(&before, &spec).is_err() {
            let restored = async {
                if !vol.lv.is_active() {
                    lvm.activate(&vol.lv_name()).await?;
                }
                ctx.lio.ensure_export(&spec).await
            };
            match restored.await {
                Ok(()) => {
                    info!(volume = %vol.id, target = %spec.target, "restored export");
                    report.restored_exports += 1;
                }
                Err(e) => {
                    error!(volume = %vol.id, error = %e, "cannot restore export");
                    report.unexported.push(vol.id.to_string());
                    continue;
                }
            }
        }
        let existing: BTreeSet<&str> = before
            .target(spec.target.as_str())
            .map(|t| t.acls.iter().map(|a| a.initiator.as_str()).collect())
            .unwrap_or_default();
        for publication in &vol.record.published {
            if existing.contains(publication.node.as_str()) {
                continue;
            }
            let key = (spec.target.to_string(), publication.node.to_string());
            if publication.chap && !chap.contains_key(&key) {
                warn!(volume = %vol.id, node = %publication.node,
                    "CHAP credentials not saved: ACL left for the CO to publish again with its secrets");
                report.awaiting_chap += 1;
                continue;
            }
            let acl = AclSpec {
                initiator: publication.node.initiator(),
                readonly: publication.readonly,
                chap: chap.get(&key).cloned(),
            };
            match ctx.lio.ensure_acl(&spec.target, &acl).await {
                Ok(()) => {
                    info!(volume = %vol.id, node = %publication.node, chap = acl.chap.is_some(), "restored ACL");
                    report.restored_acls += 1;
                }
                Err(e) => {
                    error!(volume = %vol.id, node = %publication.node, error = %e, "cannot restore ACL")
                }
            }
        }
    }
    let ids: BTreeSet<String> = volumes.iter().map(|v| v.id.to_string()).collect();
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
    if report.restored_exports + report.restored_acls > 0 {
        ctx.lio_changed();
    }
    metrics::gauge!("carve_reconcile_volumes").set(report.volumes as f64);
    metrics::gauge!("carve_reconcile_restored_exports").set(report.restored_exports as f64);
    metrics::gauge!("carve_reconcile_restored_acls").set(report.restored_acls as f64);
    metrics::gauge!("carve_reconcile_acls_awaiting_chap").set(report.awaiting_chap as f64);
    metrics::gauge!("carve_reconcile_unexported_volumes").set(report.unexported.len() as f64);
    metrics::gauge!("carve_reconcile_orphan_exports").set(report.orphan_exports.len() as f64);
    info!(
        volumes = report.volumes,
        restored_exports = report.restored_exports,
        restored_acls = report.restored_acls,
        awaiting_chap = report.awaiting_chap,
        unexported = report.unexported.len(),
        orphan_exports = report.orphan_exports.len(),
        "reconciled LIO with LVM"
    );
    Ok(report)
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
