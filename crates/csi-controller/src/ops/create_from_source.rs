//! CreateVolume with a content source: a volume restored from a snapshot, or a clone of a
//! volume. The new volume is a thin snapshot of the source (dm-thin shares the blocks until
//! either side writes), made writable, activated and exported like any other volume.
//!
//! Invariants: the new LV and its whole record (content source included) are made by one
//! `lvcreate`, with the activation-skip flag cleared so it comes up at boot like any volume;
//! the source must exist (`NotFound`) and be thin (a linear source volume: `InvalidArgument`);
//! the new volume is thin, so the StorageClass must say `thin=true` (`InvalidArgument`); its
//! size is at least the source's (a `limit_bytes` below it is `OutOfRange`) and grows to the
//! rounded `required_bytes` when that is larger; volume_context carries `contentSource`
//! (`snapshot:<id>` / `volume:<id>`), so the node never formats it; an interrupted call
//! (created, not yet grown or exported) is completed by the retry of the same request; the same
//! name with another source, size, capabilities or kind is `AlreadyExists`.

use super::{
    Ctx, capability, capacity,
    create_volume::{CreateVolume, Created, check_reachable, export, new_record},
    get_capacity, params, request, snapshot, topology,
    volume::{self, Volume},
};
use crate::lvm::{SnapshotUse, Within};
use csi_common::{Error, Result, ids::LvName};
use csi_proto::v1::{VolumeContentSource, volume_content_source::Type as SourceType};
use tracing::info;

/// The source a volume is made from, as recorded in its `carve.source` tag.
fn recorded_source(source: &VolumeContentSource) -> Result<String> {
    match &source.r#type {
        Some(SourceType::Snapshot(s)) if !s.snapshot_id.is_empty() => {
            Ok(format!("snapshot:{}", s.snapshot_id))
        }
        Some(SourceType::Volume(v)) if !v.volume_id.is_empty() => {
            Ok(format!("volume:{}", v.volume_id))
        }
        Some(SourceType::Snapshot(_)) => Err(Error::invalid_argument(
            "volume_content_source.snapshot.snapshot_id is required",
        )),
        Some(SourceType::Volume(_)) => Err(Error::invalid_argument(
            "volume_content_source.volume.volume_id is required",
        )),
        None => Err(Error::invalid_argument(
            "volume_content_source names neither a snapshot nor a volume",
        )),
    }
}

/// The origin LV and its size, or why it cannot be used.
async fn resolve(ctx: &Ctx, source: &VolumeContentSource) -> Result<(LvName, u64)> {
    match &source.r#type {
        Some(SourceType::Snapshot(s)) => {
            let missing = || {
                Error::not_found(format!(
                    "source snapshot {:?} does not exist",
                    s.snapshot_id
                ))
            };
            let id = snapshot::parse_id(&s.snapshot_id)?.ok_or_else(missing)?;
            let snap = snapshot::find(ctx, &id).await?.ok_or_else(missing)?;
            if let Some(why) = snap.unusable() {
                return Err(Error::unavailable(format!(
                    "snapshot {id} is not ready to use: {why}"
                )));
            }
            Ok((id, snap.lv.size))
        }
        Some(SourceType::Volume(v)) => {
            let missing =
                || Error::not_found(format!("source volume {:?} does not exist", v.volume_id));
            let id = volume::parse_id(&v.volume_id)?.ok_or_else(missing)?;
            let vol = volume::find(ctx, &id).await?.ok_or_else(missing)?;
            if !vol.thin() {
                return Err(Error::invalid_argument(format!(
                    "volume {id} is a linear (thick) volume: Carve clones are thin snapshots, so \
                     only volumes of a thin StorageClass (thin=true) can be cloned"
                )));
            }
            Ok((vol.lv_name(), vol.lv.size))
        }
        None => Err(Error::invalid_argument(
            "volume_content_source names neither a snapshot nor a volume",
        )),
    }
}

/// CreateVolume from `source`.
pub async fn create_from_source(
    ctx: &Ctx,
    req: CreateVolume<'_>,
    source: &VolumeContentSource,
) -> Result<Created> {
    request::check_name(req.name)?;
    request::check_portals(ctx)?;
    let content_source = recorded_source(source)?;
    let caps = capability::parse_all(req.capabilities)?;
    let params = params::parse(req.parameters, ctx.settings.thin_pool.as_deref())?;
    if !params.thin {
        return Err(Error::invalid_argument(
            "a volume made from a snapshot or another volume is a thin snapshot of it: \
             use a thin StorageClass (parameter thin=true)",
        ));
    }
    let pool = ctx
        .settings
        .thin_pool
        .clone()
        .ok_or_else(|| Error::invalid_argument("no thin pool is configured (--thin-pool)"))?;
    let lvm = ctx.lvm()?;
    let vg = lvm.vg().await?;
    let minimum = capability::minimum_bytes(&caps);
    let lv = LvName::for_volume(req.name);

    if let Some(row) = lvm.get(&lv).await? {
        let existing = Volume::from_row(row)?.ok_or_else(|| {
            Error::already_exists(format!("LV {lv} exists and is not a Carve volume"))
        })?;
        let volume = complete(ctx, existing, &req, &caps, &content_source, vg.extent_size).await?;
        export(ctx, &volume, lvm.vg_name()).await?;
        return Ok(Created::AlreadyExisted(volume));
    }
    check_reachable(ctx, &req)?;

    let (origin, source_size) = resolve(ctx, source).await?;
    let wanted = capacity::size_for(req.capacity, vg.extent_size, minimum, source_size)?;
    let size = wanted.max(source_size);
    let limit = req
        .capacity
        .map_or(0, |r| r.limit_bytes.max(0).cast_unsigned());
    if limit != 0 && size > limit {
        return Err(Error::out_of_range(format!(
            "the source {content_source} has {source_size} bytes; a volume made from it cannot \
             be smaller, and limit_bytes is {limit}"
        )));
    }
    let record = new_record(&req, &caps, content_source.clone(), &params.claim);
    let claim = |bytes| Within {
        claim: get_capacity::thin_claim(ctx, &pool, bytes),
        seen: None,
    };
    // The snapshot promises the source's size, the growth the rest: each admitted in the queue.
    lvm.snapshot_within(
        &origin,
        &lv,
        SnapshotUse::Volume,
        &record.creation_tags(),
        claim(source_size),
    )
    .await?;
    if size > source_size {
        lvm.extend_within(&lv, size, claim(size - source_size))
            .await?;
    }
    let row = lvm
        .get(&lv)
        .await?
        .ok_or_else(|| Error::internal(format!("LV {lv} vanished right after lvcreate")))?;
    let volume = Volume::from_row(row)?
        .ok_or_else(|| Error::internal(format!("LV {lv} lacks the tags it was created with")))?;
    export(ctx, &volume, lvm.vg_name()).await?;
    info!(volume = %volume.id, lv = %lv, source = %content_source, size, "created volume from a source");
    Ok(Created::Created(volume))
}

/// The existing volume of the request's name: checked against the request, and grown if an
/// interrupted call of the same request (its recorded `required_bytes`) left it smaller; a
/// request for another size, capabilities, source or kind is `AlreadyExists`.
async fn complete(
    ctx: &Ctx,
    volume: Volume,
    req: &CreateVolume<'_>,
    caps: &[capability::Capability],
    content_source: &str,
    extent_size: u64,
) -> Result<Volume> {
    let incompatible = |why: String| {
        Error::already_exists(format!(
            "volume {:?} already exists as {} but is incompatible: {why}",
            req.name, volume.id
        ))
    };
    if volume.record.name != req.name {
        return Err(incompatible(
            "the LV belongs to another volume name (hash collision)".into(),
        ));
    }
    if let Some(why) = topology::unmet(&ctx.settings.accessible_topology, req.requisite) {
        return Err(incompatible(why));
    }
    if volume.record.content_source != content_source {
        let was = match volume.record.content_source.as_str() {
            "" => "empty".to_string(),
            other => other.to_string(),
        };
        return Err(incompatible(format!("it was created from {was}")));
    }
    if !volume.thin() {
        return Err(incompatible("it is not thin".into()));
    }
    if let Some(why) = capability::unserved(caps, &volume.record.capabilities) {
        return Err(incompatible(why));
    }
    if capacity::satisfies(volume.lv.size, req.capacity) {
        return Ok(volume);
    }
    let required = req
        .capacity
        .map_or(0, |r| r.required_bytes.max(0).cast_unsigned());
    if volume.lv.size >= required {
        return Err(incompatible(format!(
            "it has {} bytes, above limit_bytes",
            volume.lv.size
        )));
    }
    if volume.record.required_bytes != required {
        // Only the call that made it may grow it: a retry carries the recorded request.
        return Err(incompatible(format!(
            "it has {} bytes and was asked for {} bytes, not {required}",
            volume.lv.size, volume.record.required_bytes
        )));
    }
    let size = capacity::size_for(
        req.capacity,
        extent_size,
        capability::minimum_bytes(caps),
        volume.lv.size,
    )?;
    let lvm = ctx.lvm()?;
    let pool = volume.lv.pool.as_deref().unwrap_or_default();
    let within = Within {
        claim: get_capacity::thin_claim(ctx, pool, size - volume.lv.size),
        seen: None,
    };
    lvm.extend_within(&volume.lv_name(), size, within).await?;
    let row = lvm
        .get(&volume.lv_name())
        .await?
        .ok_or_else(|| Error::internal(format!("LV {} vanished after lvextend", volume.id)))?;
    Volume::from_row(row)?.ok_or_else(|| Error::internal(format!("LV {} lost its tags", volume.id)))
}

#[cfg(test)]
#[path = "create_from_source_tests.rs"]
mod tests;
