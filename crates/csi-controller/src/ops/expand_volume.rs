//! ControllerExpandVolume: grows the LV (online: LIO's iblock backstore reports the live size of
//! the LV to the initiator, so the exported volume keeps serving), then the node rescans and
//! grows the filesystem.
//!
//! Invariants: the new size is `required_bytes` rounded up to whole extents, as at create, and
//! at most `limit_bytes` (else `OutOfRange`); a volume already at or above `required_bytes` is
//! answered with its current size and nothing runs (idempotent; a retry after an interrupted
//! call only completes the tag); a range that would need a smaller volume is `OutOfRange` (no
//! shrinking); the growth must fit the VG's free space (linear) or the thin pool's remaining
//! promise (thin), checked inside the per-VG queue right before `lvextend`, else
//! `ResourceExhausted` naming the figures; the recorded `carve.required` tag follows, after
//! the LV has grown; `node_expansion_required` is true for mount and block volumes alike, so
//! the node always rescans the disk; a `volume_capability` the volume was not created for
//! (block against a filesystem volume, another filesystem) is `InvalidArgument` and grows nothing.

use super::{Ctx, capability, capacity, get_capacity, volume};
use crate::lvm::{Claim, Within, tags::required_tag};
use csi_common::{Error, Result};
use csi_proto::v1::{CapacityRange, VolumeCapability};
use tracing::info;

/// What ControllerExpandVolume answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expanded {
    /// The volume's size now, in bytes.
    pub capacity: u64,
    /// Whether the CO must call NodeExpandVolume (always: the node rescans the disk).
    pub node_expansion_required: bool,
}

/// ControllerExpandVolume.
pub async fn expand_volume(
    ctx: &Ctx,
    raw_id: &str,
    range: Option<&CapacityRange>,
    capability: Option<&VolumeCapability>,
) -> Result<Expanded> {
    let id = volume::parse_id(raw_id)?;
    let range = range.ok_or_else(|| Error::invalid_argument("capacity_range is required"))?;
    if range.required_bytes < 0 || range.limit_bytes < 0 {
        return Err(Error::invalid_argument(
            "capacity_range must not be negative",
        ));
    }
    let (required, limit) = (
        range.required_bytes.cast_unsigned(),
        range.limit_bytes.cast_unsigned(),
    );
    if limit != 0 && required > limit {
        return Err(Error::out_of_range(format!(
            "required_bytes {required} exceeds limit_bytes {limit}"
        )));
    }
    let cap = capability.map(capability::parse).transpose()?;
    let missing = || Error::not_found(format!("volume {raw_id:?} does not exist"));
    let id = id.ok_or_else(missing)?;
    let vol = volume::find(ctx, &id).await?.ok_or_else(missing)?;
    if let Some(why) = cap.and_then(|cap| capability::unserved(&[cap], &vol.record.capabilities)) {
        // spec.md, ControllerExpandVolume errors: "Exceeds capabilities".
        return Err(Error::invalid_argument(format!("volume {id}: {why}")));
    }
    let lvm = ctx.lvm()?;
    let lv = vol.lv_name();
    let current = vol.lv.size;
    if limit != 0 && current > limit {
        return Err(Error::out_of_range(format!(
            "volume {id} already has {current} bytes, above limit_bytes {limit}: \
             volumes cannot shrink"
        )));
    }
    let size = if current >= required {
        current
    } else {
        let survey = lvm.survey().await?;
        let size = capacity::size_for(Some(range), survey.vg.extent_size, 0, current)?;
        let growth = size - current;
        let claim = match &vol.lv.pool {
            Some(pool) => get_capacity::thin_claim(ctx, pool, growth),
            None => Claim::Linear { bytes: growth },
        };
        let within = Within {
            claim,
            seen: Some(&survey),
        };
        lvm.extend_within(&lv, size, within)
            .await
            .map_err(|e| e.context(format!("grow volume {id} by {growth} bytes")))?;
        info!(volume = %id, from = current, to = size, "expanded volume");
        size
    };
    if required > vol.record.required_bytes {
        lvm.retag(
            &lv,
            &[required_tag(vol.record.required_bytes)],
            &[required_tag(required)],
        )
        .await?;
    }
    Ok(Expanded {
        capacity: size,
        node_expansion_required: true,
    })
}

#[cfg(test)]
#[path = "expand_volume_tests.rs"]
mod tests;
