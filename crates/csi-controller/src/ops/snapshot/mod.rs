//! CSI snapshots: thin snapshot LVs (`snap-…`, named from the CSI snapshot name) in the thin
//! pool, carrying their record in tags.
//!
//! Invariants: the snapshot id is the snapshot LV's name (`LvName::for_snapshot`), so it is
//! deterministic, `[a-z0-9-]`, and never a volume id (`csi-…`); only `snap-…` LVs with Carve's
//! marker and a snapshot record are snapshots (anything else is never modified or deleted); a
//! snapshot is never exported (its activation-skip flag is set; it is only ever the origin of
//! new thin LVs); thin snapshots are independent of their source in dm-thin, so deleting the
//! source volume keeps its snapshots usable; `ready_to_use` is true only for a thin LV whose
//! health field reports no failure (pool failed, out of data space, read-only metadata,
//! partial or unknown).

pub mod create;
pub mod delete;
pub mod list;

use super::Ctx;
use crate::lvm::{LvRow, tags::snapshot::SnapshotRecord};
use csi_common::{Error, Result, ids::LvName};

/// The prefix of every snapshot id and snapshot LV name.
pub const PREFIX: &str = "snap-";

/// One snapshot: its LV and the record in its tags.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The snapshot id (the LV name).
    pub id: LvName,
    /// The LV as `lvs` reported it.
    pub lv: LvRow,
    /// The record in its tags.
    pub record: SnapshotRecord,
}

impl Snapshot {
    /// The snapshot stored in `row`, or `None` if the LV is not a Carve snapshot.
    pub fn from_row(row: LvRow) -> Result<Option<Self>> {
        let Some(id) = LvName::parse(&row.name)
            .ok()
            .filter(|lv| lv.as_str().starts_with(PREFIX))
        else {
            return Ok(None);
        };
        let Some(record) = super::volume::record_in(&row, SnapshotRecord::from_tags)? else {
            return Ok(None);
        };
        Ok(Some(Self {
            id,
            lv: row,
            record,
        }))
    }

    /// Why the snapshot cannot be used as a source now, if it cannot.
    pub fn unusable(&self) -> Option<String> {
        if !self.lv.attr.starts_with('V') || self.lv.pool.is_none() {
            return Some(format!(
                "LV {} is not a thin volume (attr {})",
                self.id, self.lv.attr
            ));
        }
        let health = match self.lv.attr.as_bytes().get(8) {
            Some(b'F') => "its thin pool has failed",
            Some(b'D') => "its thin pool is out of data space",
            Some(b'M') => "its thin pool's metadata is read-only",
            Some(b'p') => "a physical volume is missing",
            Some(b'X') => "LVM cannot tell its health",
            _ => return None,
        };
        Some(format!("snapshot {}: {health}", self.id))
    }

    /// `ready_to_use`: the snapshot can be the source of a new volume now.
    pub fn ready(&self) -> bool {
        self.unusable().is_none()
    }

    /// The CSI message.
    pub fn to_csi(&self) -> csi_proto::v1::Snapshot {
        csi_proto::v1::Snapshot {
            size_bytes: i64::try_from(self.lv.size).unwrap_or(i64::MAX),
            snapshot_id: self.id.to_string(),
            source_volume_id: self.record.source_volume.to_string(),
            creation_time: Some(prost_types::Timestamp {
                seconds: self.record.created_seconds,
                nanos: self.record.created_nanos.cast_signed(),
            }),
            ready_to_use: self.ready(),
            group_snapshot_id: String::new(),
        }
    }
}

/// A snapshot id from a request: empty is `InvalidArgument`; anything Carve could never have
/// issued is `Ok(None)` (no such snapshot).
pub fn parse_id(raw: &str) -> Result<Option<LvName>> {
    if raw.is_empty() {
        return Err(Error::invalid_argument("snapshot_id is required"));
    }
    Ok(LvName::parse(raw)
        .ok()
        .filter(|lv| lv.as_str().starts_with(PREFIX)))
}

/// Reads the snapshot `id`, or `None`.
pub async fn find(ctx: &Ctx, id: &LvName) -> Result<Option<Snapshot>> {
    match ctx.lvm()?.get(id).await? {
        Some(row) => Snapshot::from_row(row),
        None => Ok(None),
    }
}

/// Reads every snapshot, sorted by id.
pub async fn list(ctx: &Ctx) -> Result<Vec<Snapshot>> {
    super::volume::read_sorted(ctx, Snapshot::from_row, |s| &s.id).await
}

#[cfg(test)]
pub(crate) mod testing {
    use crate::{
        lvm::{LvRow, tags::snapshot::SnapshotRecord},
        ops::testing::lv_row,
    };
    use csi_common::ids::VolumeId;

    /// The record of snapshot `name` of `source`, created at a fixed time.
    pub fn record(name: &str, source: &str) -> SnapshotRecord {
        SnapshotRecord {
            name: name.into(),
            source_volume: VolumeId::parse(source).unwrap(),
            created_seconds: 1_732_190_000,
            created_nanos: 5,
        }
    }

    /// The row `lvs` reports for a thin snapshot LV (attr as captured: `Vwi---tz-k`).
    pub fn snap_row(lv: &str, size: u64, name: &str, source: &str) -> LvRow {
        let mut row = lv_row(
            lv,
            size,
            Some("pool"),
            &record(name, source).creation_tags(),
        );
        row.attr = "Vwi---tz-k".into();
        row.origin = Some(source.into());
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{carve_tags, lv_row};

    #[test]
    fn only_tagged_thin_snap_lvs_are_snapshots_and_readiness_follows_health() {
        let row = testing::snap_row("snap-s-1", 8 << 20, "s", "csi-v-1");
        let snap = Snapshot::from_row(row.clone()).unwrap().unwrap();
        assert!(snap.ready(), "{:?}", snap.unusable());
        let csi = snap.to_csi();
        assert_eq!(
            (csi.snapshot_id.as_str(), csi.source_volume_id.as_str()),
            ("snap-s-1", "csi-v-1")
        );
        assert_eq!(csi.size_bytes, 8 << 20);
        assert_eq!(csi.creation_time.unwrap().seconds, 1_732_190_000);
        for attr in ["Vwi---tzFk", "Vwi---tzDk", "Vwi---tzMk", "Vwi---tzXk"] {
            let mut bad = row.clone();
            bad.attr = attr.into();
            assert!(!Snapshot::from_row(bad).unwrap().unwrap().ready(), "{attr}");
        }
        let volume = lv_row("csi-v-1", 8 << 20, Some("pool"), &carve_tags("v"));
        assert_eq!(Snapshot::from_row(volume).unwrap(), None);
        let mut renamed = row.clone();
        renamed.name = "csi-s-1".into();
        assert_eq!(Snapshot::from_row(renamed).unwrap(), None, "not snap-");
        let foreign = lv_row("snap-s-1", 8 << 20, Some("pool"), &[]);
        assert_eq!(Snapshot::from_row(foreign).unwrap(), None);
    }

    fn captured(name: &str) -> Vec<LvRow> {
        let path = format!(
            "{}/../../tests/fixtures/controller/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        crate::lvm::report::parse_lvs(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn captured_thin_snapshots_are_ready_also_after_their_origin_is_removed() {
        let rows = captured("lvs-thin-snapshot.stdout");
        let snap = Snapshot::from_row(rows[0].clone()).unwrap().unwrap();
        assert_eq!(snap.lv.attr, "Vwi---tz-k", "inactive, activation skipped");
        assert_eq!(snap.record.name, "s1");
        assert_eq!(snap.record.source_volume.as_str(), "csi-src-0123");
        assert!(snap.ready());
        let after = captured("lvs-after-origin-removed.stdout");
        let snaps: Vec<Snapshot> = after
            .into_iter()
            .filter_map(|r| Snapshot::from_row(r).unwrap())
            .collect();
        assert_eq!(snaps.len(), 1, "only the snap- LV with its record");
        assert_eq!(snaps[0].lv.origin, None, "the origin is gone");
        assert_eq!(snaps[0].record.source_volume.as_str(), "csi-src-0123");
        assert!(snaps[0].ready());
        // A restore: a normal active volume, not a snapshot; no tag was inherited.
        let restore = &captured("lvs-restore.stdout")[0];
        assert!(restore.is_active());
        assert!(!restore.attr.ends_with('k'), "activation-skip cleared");
        assert_eq!(Snapshot::from_row(restore.clone()).unwrap(), None);
    }

    #[test]
    fn ids_from_requests() {
        assert!(parse_id("").is_err());
        assert_eq!(parse_id("csi-v-1").unwrap(), None);
        assert_eq!(parse_id("../etc").unwrap(), None);
        assert_eq!(parse_id("snap-s-1").unwrap().unwrap().as_str(), "snap-s-1");
    }
}
