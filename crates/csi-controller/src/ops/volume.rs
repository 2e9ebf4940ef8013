//! A Carve volume as read back from LVM: its LV row and tag record, and what follows from them
//! (target IQN, export spec, contexts, published nodes, condition).
//!
//! Invariants: only LVs named like a Carve volume (`csi-…`) carrying the marker tag are
//! volumes; the volume id is the LV name; contexts never carry a secret.

use super::Ctx;
use crate::{
    lio::{ExportSpec, LioState, TargetState},
    lvm::{Allocation, LvRow, tags::VolumeRecord},
};
use csi_common::{
    Error, Result,
    contract::{CONTENT_SOURCE, IscsiTarget, PV_NAME, PVC_NAME, PVC_NAMESPACE},
    ids::{Iqn, LvName, NodeId, VolumeId},
};
use csi_proto::v1::{
    VolumeContentSource,
    volume_content_source::{SnapshotSource, Type as SourceType, VolumeSource},
};
use std::collections::{BTreeSet, HashMap};

/// One volume: its LV and the record in its tags.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    /// The volume id (the LV name).
    pub id: VolumeId,
    /// The LV as `lvs` reported it.
    pub lv: LvRow,
    /// The record in its tags.
    pub record: VolumeRecord,
}

impl Volume {
    /// The volume stored in `row`, or `None` if the LV is not a Carve volume.
    pub fn from_row(row: LvRow) -> Result<Option<Self>> {
        let Ok(lv) = LvName::parse(&row.name) else {
            return Ok(None);
        };
        if !row.name.starts_with("csi-") {
            return Ok(None);
        }
        let Some(record) = record_in(&row, VolumeRecord::from_tags)? else {
            return Ok(None);
        };
        Ok(Some(Self {
            id: VolumeId::from_lv(&lv),
            lv: row,
            record,
        }))
    }

    /// The volume `lvcreate` has just made of `lv`: LVM creates an active LV of exactly the
    /// extent-rounded size it is given, carrying the tags it is given, so reading it back would
    /// only cost one more report (a whole process per CreateVolume). The export that follows
    /// verifies the device through LIO, and every later call reads the LV from LVM.
    pub fn created(lv: &LvName, size: u64, allocation: &Allocation, record: VolumeRecord) -> Self {
        let pool = match allocation {
            Allocation::Thin { pool } => Some(pool.as_str()),
            Allocation::Linear => None,
        };
        Self {
            id: VolumeId::from_lv(lv),
            lv: LvRow::fresh(lv.as_str(), size, pool, record.creation_tags()),
            record,
        }
    }

    /// The LV name.
    pub fn lv_name(&self) -> LvName {
        self.id.lv_name()
    }

    /// A thin LV.
    pub fn thin(&self) -> bool {
        self.lv.pool.is_some()
    }

    /// The target IQN under `prefix`.
    pub fn target_iqn(&self, prefix: &Iqn) -> Iqn {
        prefix.target_for(&self.id)
    }

    /// The export this volume must have.
    pub fn export_spec(&self, ctx: &Ctx, vg: &str) -> ExportSpec {
        ExportSpec {
            target: self.target_iqn(&ctx.settings.iqn_prefix),
            storage_object: self.id.to_string(),
            device: format!("/dev/{vg}/{}", self.id).into(),
            serial: self.id.unit_serial(),
            portals: ctx.settings.portals.clone(),
            thin: self.thin(),
        }
    }

    /// Where the node finds the volume.
    pub fn iscsi_target(&self, ctx: &Ctx) -> IscsiTarget {
        IscsiTarget {
            iqn: self.target_iqn(&ctx.settings.iqn_prefix),
            portals: ctx
                .settings
                .portals
                .iter()
                .map(ToString::to_string)
                .collect(),
            lun: 0,
            serial: self.id.unit_serial(),
        }
    }

    /// volume_context: the iSCSI coordinates, the content source and, when recorded, the claim
    /// the volume was provisioned for (the same in CreateVolume and ListVolumes).
    pub fn volume_context(&self, ctx: &Ctx) -> HashMap<String, String> {
        let mut context = self.iscsi_target(ctx).to_context();
        context.insert(CONTENT_SOURCE.into(), self.record.content_source.clone());
        let claim = &self.record.claim;
        for (key, value) in [
            (PVC_NAMESPACE, &claim.pvc_namespace),
            (PVC_NAME, &claim.pvc_name),
            (PV_NAME, &claim.pv_name),
        ] {
            if !value.is_empty() {
                context.insert(key.into(), value.clone());
            }
        }
        context
    }

    /// The source this volume was made from, as CSI's `Volume.content_source` (spec.md,
    /// CreateVolume: a plugin with CLONE_VOLUME or a snapshot source MUST set it on a volume made
    /// from a source; external-provisioner deletes a new volume whose answer lacks it). `None`
    /// for an empty volume or a record Carve does not recognise.
    pub fn content_source(&self) -> Option<VolumeContentSource> {
        let (kind, id) = self.record.content_source.split_once(':')?;
        let r#type = match kind {
            "snapshot" => SourceType::Snapshot(SnapshotSource {
                snapshot_id: id.to_string(),
            }),
            "volume" => SourceType::Volume(VolumeSource {
                volume_id: id.to_string(),
            }),
            _ => return None,
        };
        Some(VolumeContentSource {
            r#type: Some(r#type),
        })
    }

    /// Nodes the volume is published to, as reported to the CO: the ACLs in LIO (the access
    /// that really exists, so that external-attacher republishes what a reboot lost).
    pub fn published_nodes(&self, target: Option<&TargetState>) -> BTreeSet<String> {
        target
            .map(|t| t.acls.iter().map(|a| a.initiator.clone()).collect())
            .unwrap_or_default()
    }

    /// Nodes holding or owed access, for the single-node check: the ACLs plus the publications
    /// recorded in the tags (an interrupted publish or an ACL awaiting its CHAP secrets).
    pub fn attached_nodes(&self, target: Option<&TargetState>) -> BTreeSet<String> {
        let mut nodes = self.published_nodes(target);
        nodes.extend(self.record.published.iter().map(|p| p.node.to_string()));
        nodes
    }

    /// Why the volume is not usable, if it is not: LV inactive, storage object missing or
    /// disabled, target missing or disabled, LUN 0 not mapped.
    pub fn abnormal(&self, ctx: &Ctx, lio: &LioState) -> Option<String> {
        if !self.lv.is_active() {
            return Some(format!("logical volume {} is not active", self.id));
        }
        match lio.storage_object(self.id.as_str()) {
            None => return Some("LIO storage object missing".into()),
            Some(o) if !o.enabled => return Some("LIO storage object not enabled".into()),
            Some(_) => {}
        }
        let iqn = self.target_iqn(&ctx.settings.iqn_prefix);
        match lio.target(iqn.as_str()) {
            None => Some(format!("iSCSI target {iqn} missing")),
            Some(t) if !t.enabled => Some(format!("iSCSI target {iqn} not enabled")),
            Some(t) if t.lun0_object.as_deref() != Some(self.id.as_str()) => {
                Some("LUN 0 does not map the volume".into())
            }
            Some(_) => None,
        }
    }
}

/// A volume id from a request: empty is `InvalidArgument`; a well-formed id that Carve could
/// never have issued is `Ok(None)` (the volume does not exist).
pub fn parse_id(raw: &str) -> Result<Option<VolumeId>> {
    VolumeId::lookup(raw)
}

/// A node id from a request: empty is `InvalidArgument`; anything but an initiator IQN is
/// `Ok(None)` (no such node: the node id is the node's initiator IQN).
pub fn parse_node(raw: &str) -> Result<Option<NodeId>> {
    if raw.is_empty() {
        return Err(Error::invalid_argument("node_id is required"));
    }
    Ok(NodeId::parse(raw).ok())
}

/// Reads the volume `id`, or `None`.
pub async fn find(ctx: &Ctx, id: &VolumeId) -> Result<Option<Volume>> {
    let lvm = ctx.lvm()?;
    match lvm.get(&id.lv_name()).await? {
        Some(row) => Volume::from_row(row),
        None => Ok(None),
    }
}

/// Reads every volume, sorted by id.
pub async fn list(ctx: &Ctx) -> Result<Vec<Volume>> {
    read_sorted(ctx, Volume::from_row, |v| &v.id).await
}

/// The record `from_tags` reads in the tags of `row` (`None`: the LV carries none); a malformed
/// one is an error naming the LV.
pub(crate) fn record_in<R>(
    row: &LvRow,
    from_tags: fn(&[String]) -> Result<Option<R>>,
) -> Result<Option<R>> {
    from_tags(&row.tags).map_err(|e| e.context(format!("tags of LV {}", row.name)))
}

/// Every LV that `from_row` makes a `T` of (volumes, snapshots), sorted by `key`.
pub(crate) async fn read_sorted<T, K: Ord>(
    ctx: &Ctx,
    from_row: fn(LvRow) -> Result<Option<T>>,
    key: fn(&T) -> &K,
) -> Result<Vec<T>> {
    let mut found = Vec::new();
    for row in ctx.lvm()?.list().await? {
        if let Some(t) = from_row(row)? {
            found.push(t);
        }
    }
    found.sort_by(|a, b| key(a).cmp(key(b)));
    Ok(found)
}
