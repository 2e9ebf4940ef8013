//! CreateVolume of an empty volume (a content source goes to
//! [`create_from_source`](super::create_from_source)): an LV carrying its record in tags,
//! exported as one iSCSI target.
//!
//! Invariants: the LV name is derived from the CSI name (any Unicode; never reaches a shell);
//! the LV and its tags are created by one `lvcreate`, so a volume never exists without its
//! record; one report of the VG answers existence, extent size and free space (in the
//! controller, from the ledger: no LVM process), then `lvcreate` is the only LVM command,
//! because under load every LVM process costs far more than the work it does; the space check
//! runs inside the per-VG queue right before `lvcreate` (see [`crate::lvm::space`]), against
//! the ledger (or that report, unless another mutation overtook it); the volume is reported created only once its export has been verified; an
//! interrupted call leaves the LV, and the retry (same name) completes the export; the same
//! name with a compatible request answers the existing volume, an incompatible one
//! `AlreadyExists`.

use super::{Ctx, capability, capacity, get_capacity, params, request, topology, volume::Volume};
use crate::lvm::{
    Allocation, Claim, Within,
    tags::{ClaimRef, VolumeRecord},
};
use csi_common::{Error, Result, ids::LvName};
use csi_proto::v1::{CapacityRange, VolumeCapability};
use std::collections::HashMap;
use tracing::info;

/// A CreateVolume request, stripped of gRPC.
#[derive(Debug, Clone, Copy)]
pub struct CreateVolume<'a> {
    /// The CSI name (untrusted).
    pub name: &'a str,
    /// The capacity range.
    pub capacity: Option<&'a CapacityRange>,
    /// The requested capabilities.
    pub capabilities: &'a [VolumeCapability],
    /// StorageClass parameters.
    pub parameters: &'a HashMap<String, String>,
    /// `accessibility_requirements.requisite`: topologies of which the volume must be
    /// reachable from one (empty: anywhere; see [`topology`](super::topology)).
    pub requisite: &'a [HashMap<String, String>],
}

/// What CreateVolume did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// A new volume.
    Created(Volume),
    /// The volume of the same name, compatible with the request.
    AlreadyExisted(Volume),
}

impl Created {
    /// The volume, either way.
    pub fn volume(&self) -> &Volume {
        match self {
            Created::Created(v) | Created::AlreadyExisted(v) => v,
        }
    }
}

/// Refuses a new volume where this host's volumes cannot be reached from (RESOURCE_EXHAUSTED,
/// spec.md: "Unable to provision in `accessible_topology`").
pub(super) fn check_reachable(ctx: &Ctx, req: &CreateVolume<'_>) -> Result<()> {
    match topology::unmet(&ctx.settings.accessible_topology, req.requisite) {
        Some(why) => Err(Error::resource_exhausted(why)),
        None => Ok(()),
    }
}

/// Why an existing volume does not match the request, if it does not.
fn incompatibility(
    ctx: &Ctx,
    volume: &Volume,
    req: &CreateVolume<'_>,
    caps: &[capability::Capability],
    thin: bool,
    minimum: u64,
) -> Option<String> {
    if let Some(why) = topology::unmet(&ctx.settings.accessible_topology, req.requisite) {
        return Some(why);
    }
    if volume.record.name != req.name {
        return Some(format!(
            "LV {} belongs to another volume name (hash collision or foreign LV)",
            volume.id
        ));
    }
    if let Some(why) = capability::unserved(caps, &volume.record.capabilities) {
        return Some(why);
    }
    if !capacity::satisfies(volume.lv.size, req.capacity) || volume.lv.size < minimum {
        return Some(format!(
            "it has {} bytes, outside the requested capacity range",
            volume.lv.size
        ));
    }
    if volume.thin() != thin {
        return Some(format!(
            "it is {}thin",
            if volume.thin() { "" } else { "not " }
        ));
    }
    if !volume.record.content_source.is_empty() {
        return Some(format!(
            "it was created from {}",
            volume.record.content_source
        ));
    }
    None
}

/// The record a volume created for `req` starts with: its request, capabilities, content source
/// (empty for a new volume) and claim; not published, never used.
pub(super) fn new_record(
    req: &CreateVolume<'_>,
    caps: &[capability::Capability],
    content_source: String,
    claim: &ClaimRef,
) -> VolumeRecord {
    VolumeRecord {
        name: req.name.to_string(),
        required_bytes: req
            .capacity
            .map_or(0, |r| r.required_bytes.max(0).cast_unsigned()),
        capabilities: capability::summary(caps),
        content_source,
        published: Vec::new(),
        used: false,
        claim: claim.clone(),
    }
}

/// CreateVolume.
pub async fn create_volume(ctx: &Ctx, req: CreateVolume<'_>) -> Result<Created> {
    request::check_name(req.name)?;
    request::check_portals(ctx)?;
    let caps = capability::parse_all(req.capabilities)?;
    let params = params::parse(req.parameters, ctx.settings.thin_pool.as_deref())?;
    let lvm = ctx.lvm()?;
    let survey = lvm.survey().await?;
    let minimum = capability::minimum_bytes(&caps);
    let lv = LvName::for_volume(req.name);

    if let Some(row) = survey.lv(&lv) {
        let volume = Volume::from_row(row.clone())?.ok_or_else(|| {
            Error::already_exists(format!("LV {lv} exists and is not a Carve volume"))
        })?;
        if let Some(why) = incompatibility(ctx, &volume, &req, &caps, params.thin, minimum) {
            return Err(Error::already_exists(format!(
                "volume {:?} already exists as {} but is incompatible: {why}",
                req.name, volume.id
            )));
        }
        export(ctx, &volume, lvm.vg_name()).await?;
        return Ok(Created::AlreadyExisted(volume));
    }
    check_reachable(ctx, &req)?;

    let size = capacity::size_for(
        req.capacity,
        survey.vg.extent_size,
        minimum,
        ctx.settings.default_capacity,
    )?;
    let allocation = match (&ctx.settings.thin_pool, params.thin) {
        (Some(pool), true) => Allocation::Thin { pool: pool.clone() },
        (None, true) => {
            return Err(Error::invalid_argument(
                "thin=true but no thin pool is configured",
            ));
        }
        _ => Allocation::Linear,
    };
    let claim = match &allocation {
        Allocation::Thin { pool } => get_capacity::thin_claim(ctx, pool, size),
        Allocation::Linear => Claim::Linear { bytes: size },
    };
    let record = new_record(&req, &caps, String::new(), &params.claim);
    let within = Within {
        claim,
        seen: Some(&survey),
    };
    lvm.create_within(&lv, size, &allocation, &record.creation_tags(), within)
        .await
        .map_err(|e| e.context(format!("create volume {:?}", req.name)))?;
    let volume = Volume::created(&lv, size, &allocation, record);
    export(ctx, &volume, lvm.vg_name()).await?;
    info!(volume = %volume.id, lv = %lv, size, thin = params.thin, "created volume");
    Ok(Created::Created(volume))
}

pub(super) async fn export(ctx: &Ctx, volume: &Volume, vg: &str) -> Result<()> {
    if !volume.lv.is_active() {
        ctx.lvm()?.activate(&volume.lv_name()).await?;
    }
    let spec = volume.export_spec(ctx, vg);
    ctx.lio
        .ensure_export(&spec)
        .await
        .map_err(|e| e.context(format!("export volume {}", volume.id)))
}

#[cfg(test)]
#[path = "create_volume_tests.rs"]
mod tests;
