//! CreateSnapshot: a thin snapshot LV of a thin volume, with its record in tags.
//!
//! Invariants: idempotent by name (the snapshot LV name is derived from it): the same name and
//! source answer the existing snapshot, another source (or a hash collision) is
//! `AlreadyExists`; the snapshot is cut by one `lvcreate` that also writes its tags, so it is
//! listed only once it exists whole; only thin volumes can be snapshotted (linear volumes:
//! `InvalidArgument`, see the README); the snapshot's virtual size counts against the thin
//! pool's promise like a volume's, so `ResourceExhausted` when it would not fit; unknown
//! parameters are `InvalidArgument` (the CO's reserved `csi.storage.k8s.io/*` are ignored).

use super::{Snapshot, find};
use crate::{
    lvm::{SnapshotUse, Within, tags::snapshot::SnapshotRecord},
    ops::{Ctx, get_capacity, request, volume},
};
use csi_common::{Error, Result, ids::LvName};
use std::{collections::HashMap, time::SystemTime};
use tracing::info;

const RESERVED_PREFIX: &str = "csi.storage.k8s.io/";

/// A CreateSnapshot request, stripped of gRPC.
#[derive(Debug, Clone, Copy)]
pub struct CreateSnapshot<'a> {
    /// The CSI snapshot name (untrusted).
    pub name: &'a str,
    /// The volume to snapshot.
    pub source_volume_id: &'a str,
    /// VolumeSnapshotClass parameters.
    pub parameters: &'a HashMap<String, String>,
}

/// What CreateSnapshot did.
#[derive(Debug, Clone, PartialEq)]
pub enum SnapshotCreated {
    /// A new snapshot.
    Created(Snapshot),
    /// The snapshot of the same name and source.
    AlreadyExisted(Snapshot),
}

impl SnapshotCreated {
    /// The snapshot, either way.
    pub fn snapshot(&self) -> &Snapshot {
        match self {
            SnapshotCreated::Created(s) | SnapshotCreated::AlreadyExisted(s) => s,
        }
    }
}

/// The snapshot id CreateSnapshot gives the CSI name `name`.
pub fn id_for(name: &str) -> LvName {
    LvName::for_snapshot(name)
}

fn check_request(req: &CreateSnapshot<'_>) -> Result<()> {
    request::check_name(req.name)?;
    if req.source_volume_id.is_empty() {
        return Err(Error::invalid_argument("source_volume_id is required"));
    }
    if let Some(key) = req
        .parameters
        .keys()
        .find(|k| !k.starts_with(RESERVED_PREFIX))
    {
        return Err(Error::invalid_argument(format!(
            "unknown snapshot parameter {key:?} (Carve's VolumeSnapshotClass takes none)"
        )));
    }
    Ok(())
}

fn now() -> (i64, u32) {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    (since.as_secs().cast_signed(), since.subsec_nanos())
}

/// CreateSnapshot.
pub async fn create_snapshot(ctx: &Ctx, req: CreateSnapshot<'_>) -> Result<SnapshotCreated> {
    create_snapshot_at(ctx, req, now).await
}

/// CreateSnapshot with the clock `now` (the creation time is read just before the cut).
pub(crate) async fn create_snapshot_at(
    ctx: &Ctx,
    req: CreateSnapshot<'_>,
    now: fn() -> (i64, u32),
) -> Result<SnapshotCreated> {
    check_request(&req)?;
    let lvm = ctx.lvm()?;
    let lv = id_for(req.name);

    if let Some(row) = lvm.get(&lv).await? {
        let existing = Snapshot::from_row(row)?.ok_or_else(|| {
            Error::already_exists(format!("LV {lv} exists and is not a Carve snapshot"))
        })?;
        if existing.record.name != req.name {
            return Err(Error::already_exists(format!(
                "LV {lv} belongs to another snapshot name (hash collision)"
            )));
        }
        if existing.record.source_volume.as_str() != req.source_volume_id {
            return Err(Error::already_exists(format!(
                "snapshot {:?} already exists as {lv} of volume {}, not of {:?}",
                req.name, existing.record.source_volume, req.source_volume_id
            )));
        }
        return Ok(SnapshotCreated::AlreadyExisted(existing));
    }

    let not_found = || {
        Error::not_found(format!(
            "source volume {:?} does not exist",
            req.source_volume_id
        ))
    };
    let source_id = volume::parse_id(req.source_volume_id)?.ok_or_else(not_found)?;
    let source = volume::find(ctx, &source_id).await?.ok_or_else(not_found)?;
    let Some(pool) = source.lv.pool.clone() else {
        return Err(Error::invalid_argument(format!(
            "volume {source_id} is a linear (thick) volume: Carve snapshots are thin snapshots, \
             so only volumes of a thin StorageClass (thin=true) can be snapshotted"
        )));
    };
    let within = Within {
        claim: get_capacity::thin_claim(ctx, &pool, source.lv.size),
        seen: None,
    };
    let (created_seconds, created_nanos) = now();
    let record = SnapshotRecord {
        name: req.name.to_string(),
        source_volume: source_id.clone(),
        created_seconds,
        created_nanos,
    };
    lvm.snapshot_within(
        &source.lv_name(),
        &lv,
        SnapshotUse::Snapshot,
        &record.creation_tags(),
        within,
    )
    .await
    .map_err(|e| e.context(format!("a snapshot of {source_id}")))?;
    let snapshot = find(ctx, &lv).await?.ok_or_else(|| {
        Error::internal(format!(
            "snapshot LV {lv} vanished or lost its tags right after lvcreate"
        ))
    })?;
    info!(snapshot = %lv, volume = %source_id, size = snapshot.lv.size, ready = snapshot.ready(), "created snapshot");
    Ok(SnapshotCreated::Created(snapshot))
}

#[cfg(test)]
#[path = "create_tests.rs"]
mod tests;
