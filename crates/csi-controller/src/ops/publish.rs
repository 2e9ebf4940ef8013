//! ControllerPublishVolume: an ACL on the volume's target for that node's initiator only.
//!
//! Invariants: the node id is the node's initiator IQN (NodeGetInfo returns it), so no
//! Kubernetes API is needed; the publication is recorded in an LV tag *before* the ACL is
//! created, so a reboot restores every ACL that was ever granted and not revoked; every Carve
//! access mode is single-node, so a volume published (ACL or tag) to another node is
//! `FailedPrecondition` naming it; the same node with a different readonly flag is
//! `AlreadyExists`; a capability that does not match the one recorded at create (block vs
//! mount, another filesystem) is `InvalidArgument`, or `AlreadyExists` when the volume is
//! already published to that node; CHAP comes from the secrets, never from or into a context,
//! tag or log; a node that does not hold the volume yet gets it only below the attach limit
//! (`attach_limit`, `ResourceExhausted`); the tags are written by one `lvchange` (the only LVM
//! process of a publish: the volume is read from the ledger). The publish context says `blank=true` only for a
//! volume that provably never held data ([`provably_blank`]); a linear LV is marked used (tag)
//! before its first ACL exists, and those records are taken back when that first grant fails
//! ([`undo_first_records`]), so the retry still answers blank.

use super::{Ctx, attach_limit, capability, volume};
use crate::{
    lio::AclSpec,
    lvm::tags::{Publication, USED},
};
use csi_common::{
    Error, Result,
    contract::{BLANK, Chap, IscsiTarget, READONLY},
};
use csi_proto::v1::VolumeCapability;
use std::collections::HashMap;
use tracing::info;

/// A ControllerPublishVolume request, stripped of gRPC.
#[derive(Debug, Clone, Copy)]
pub struct Publish<'a> {
    /// Volume id.
    pub volume_id: &'a str,
    /// Node id (the initiator IQN).
    pub node_id: &'a str,
    /// The capability.
    pub capability: Option<&'a VolumeCapability>,
    /// The CO's readonly flag.
    pub readonly: bool,
    /// Secrets (CHAP keys).
    pub secrets: &'a HashMap<String, String>,
}

/// What a ControllerPublishVolume granted: where the volume is and what the node may do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The volume's iSCSI coordinates.
    pub target: IscsiTarget,
    /// The LUN is write-protected for the node.
    pub readonly: bool,
    /// The volume provably never held data (see [`provably_blank`]).
    pub blank: bool,
}

impl Published {
    /// The publish_context: the target's keys plus [`READONLY`] and [`BLANK`] (no secrets).
    pub fn to_context(&self) -> HashMap<String, String> {
        let mut context = self.target.to_context();
        context.insert(READONLY.to_string(), self.readonly.to_string());
        context.insert(BLANK.to_string(), self.blank.to_string());
        context
    }
}

/// Whether `vol` provably never held data, as read *before* this publish marked it used.
///
/// A volume with a content source holds its source's data. A thin LV with no mapped data
/// (`data_percent` exactly 0: libdm's `dm_make_percent` never rounds a non-zero count to 0, and
/// lvs(8) shows 0.00 only for exactly 0) has never been written, or was discarded entirely.
/// A linear LV has no such count, so it is blank only until its first publish (tag [`USED`],
/// or a publication tag left by a build that did not set it).
pub fn provably_blank(vol: &volume::Volume) -> bool {
    if !vol.record.content_source.is_empty() {
        return false;
    }
    if vol.thin() {
        return vol.lv.data_percent == Some(0.0);
    }
    !vol.record.used && vol.record.published.is_empty()
}

/// ControllerPublishVolume: the publish_context (target, portals, LUN, serial, readonly, blank).
pub async fn publish(ctx: &Ctx, req: Publish<'_>) -> Result<Published> {
    let id = volume::parse_id(req.volume_id)?;
    let node = volume::parse_node(req.node_id)?;
    let cap = capability::parse(
        req.capability
            .ok_or_else(|| Error::invalid_argument("volume_capability is required"))?,
    )?;
    let chap = Chap::from_secrets(req.secrets)?;
    let id =
        id.ok_or_else(|| Error::not_found(format!("volume {:?} does not exist", req.volume_id)))?;
    let node = node.ok_or_else(|| {
        Error::not_found(format!(
            "node {:?} does not exist: a Carve node id is the node's iSCSI initiator IQN",
            req.node_id
        ))
    })?;
    let mut vol = volume::find(ctx, &id)
        .await?
        .ok_or_else(|| Error::not_found(format!("volume {id} does not exist")))?;
    let readonly = req.readonly || cap.read_only();
    let lvm = ctx.lvm()?;
    let spec = vol.export_spec(ctx, lvm.vg_name());
    let state = ctx
        .lio
        .volume_state(&spec.target, &spec.storage_object)
        .await?;
    let others: Vec<String> = vol
        .attached_nodes(state.target(spec.target.as_str()))
        .into_iter()
        .filter(|n| n != node.as_str())
        .collect();
    if let Some(other) = others.first() {
        return Err(Error::failed_precondition(format!(
            "volume {id} is published to node {other}; a Carve volume is attached to one node at a time"
        )));
    }
    let publication = Publication {
        node: node.clone(),
        readonly,
        chap: chap.is_some(),
    };
    let recorded: Vec<&Publication> = vol
        .record
        .published
        .iter()
        .filter(|p| p.node == node)
        .collect();
    if !capability::matches_recorded(&cap, &vol.record.capabilities) {
        let published_here = !recorded.is_empty()
            || vol
                .published_nodes(state.target(spec.target.as_str()))
                .contains(node.as_str());
        let why = format!(
            "volume {id} was created for {:?}, which the requested capability does not match",
            vol.record.capabilities
        );
        // spec.md, ControllerPublishVolume errors: published here but incompatible →
        // ALREADY_EXISTS; otherwise an unsupported capability → INVALID_ARGUMENT.
        return Err(if published_here {
            Error::already_exists(format!("{why}; it is already published to node {node}"))
        } else {
            Error::invalid_argument(why)
        });
    }
    if let Some(existing) = recorded.iter().find(|p| p.readonly != readonly) {
        return Err(Error::already_exists(format!(
            "volume {id} is already published to node {node} with readonly={}",
            existing.readonly
        )));
    }
    // After the request's own checks, so a request refused for what it asks is never answered
    // as a full node. Only an ACL the node already has makes this a repeat that needs no room:
    // the limit counts ACLs, and a publication tag without its ACL (an interrupted publish)
    // holds none yet.
    let _reserved = if vol
        .published_nodes(state.target(spec.target.as_str()))
        .contains(node.as_str())
    {
        None
    } else {
        Some(attach_limit::reserve(ctx, &node, &id).await?)
    };
    if vol.thin() && vol.lv.data_percent.is_none() && vol.record.content_source.is_empty() {
        // The ledger keeps no data count for a thin LV a node may have written (published
        // before): ask LVM, so a repeat or a republish says blank exactly when it still is
        // (the first publish after CreateVolume reads nothing).
        if let Some(row) = lvm.read(&vol.lv_name()).await? {
            vol.lv.data_percent = row.data_percent;
        }
    }
    let blank = provably_blank(&vol);
    // The durable records, in one `lvchange` before the ACL: the used marker of a linear LV
    // and the publication (reconciliation restores ACLs from it after a reboot), replacing a
    // stale publication to the same node.
    let mut add = Vec::new();
    let mut remove = Vec::new();
    if !vol.thin() && !vol.record.used {
        add.push(USED.to_string());
    }
    if !recorded.contains(&&publication) {
        add.push(publication.tag());
        remove.extend(recorded.iter().map(|stale| stale.tag()));
    }
    if !add.is_empty() || !remove.is_empty() {
        lvm.retag(&vol.lv_name(), &remove, &add)
            .await
            .map_err(storage_full_is_internal)?;
    }
    let acl = AclSpec {
        initiator: node.initiator(),
        readonly,
        chap,
    };
    let granted = async {
        if state
            .target(spec.target.as_str())
            .is_none_or(|t| t.lun0_object.is_none())
        {
            ctx.lio.ensure_export(&spec).await?;
        }
        ctx.lio.ensure_acl(&spec.target, &acl).await
    }
    .await;
    if let Err(e) = granted {
        if blank && !vol.thin() {
            undo_first_records(ctx, &vol, &spec.target, &acl, &add, &remove).await;
        }
        return Err(e.context(format!("publish volume {id} to node {node}")));
    }
    info!(volume = %id, node = %node, readonly, "published volume");
    Ok(Published {
        target: vol.iscsi_target(ctx),
        readonly,
        blank,
    })
}

/// Undoes the records the first publication of a blank linear LV wrote (`add` added, `remove`
/// removed) after its grant failed: the ACL is removed first, and only once it is gone are
/// the records taken back, so the retry is a first publication again and answers
/// `blank=true`. Without this the retry would find the volume used, answer `blank=false`, and
/// the node would refuse to format the new volume for good. No node can have written: the
/// ACL is gone (read again from LIO) and the CO got no publish_context. A failure here leaves
/// the records (the safe direction: not blank), logged. Not undone: a publish that succeeded
/// but whose answer the CO never got (its deadline passed, the connection dropped; the guarded
/// call runs to its end regardless), and a controller that died between the records and the
/// grant. Their retry answers `blank=false`.
async fn undo_first_records(
    ctx: &Ctx,
    vol: &volume::Volume,
    target: &csi_common::ids::Iqn,
    acl: &AclSpec,
    add: &[String],
    remove: &[String],
) {
    let undone = async {
        ctx.lio.remove_acl(target, &acl.initiator).await?;
        // Gone, as LIO reads now: a removal that missed it must not take the records back.
        let state = ctx.lio.volume_state(target, "").await?;
        let left = state
            .target(target.as_str())
            .is_some_and(|t| t.acls.iter().any(|a| a.initiator == acl.initiator.as_str()));
        if left {
            return Err(Error::internal(format!(
                "the ACL for {} on {target} is still there",
                acl.initiator
            )));
        }
        ctx.lvm()?.retag(&vol.lv_name(), add, remove).await
    }
    .await;
    match undone {
        Ok(()) => {
            info!(volume = %vol.id, "publish failed before its grant: its records were taken back, the volume stays blank");
        }
        Err(e) => {
            tracing::warn!(volume = %vol.id, error = %e,
                "publish failed and its records could not be taken back: the volume now counts as used");
        }
    }
}

/// A storage host that cannot record the publication (its VG's LVM metadata area is full) is
/// INTERNAL here, not RESOURCE_EXHAUSTED: for ControllerPublishVolume that code means the node
/// has too many volumes attached (spec.md, ControllerPublishVolume errors), which detaching
/// volumes from the node would not fix. Nothing was granted (the record comes before the ACL),
/// so the CO sees a final error; the message names the remedy.
fn storage_full_is_internal(e: Error) -> Error {
    if e.kind() == csi_common::Kind::ResourceExhausted {
        Error::new(csi_common::Kind::Internal, e.message())
    } else {
        e
    }
}

#[cfg(test)]
#[path = "publish_tests.rs"]
mod tests;
