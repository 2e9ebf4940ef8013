//! GetCapacity, and the space checks CreateVolume shares with it.
//!
//! Invariants: linear volumes draw on the VG's free bytes (quarantined LVs awaiting their wipe
//! still hold theirs); thin volumes on the pool's size times the overprovisioning ratio, minus
//! the virtual sizes already promised in that pool, and never more than the pool can still
//! store (0 when it is full or faulted); a missing
//! VG or pool is `Unavailable` (the storage host is not ready), never a zero that would look
//! like "full".

use super::{Ctx, capability, params};
use crate::lvm::{Claim, LvRow, Survey, space};
use csi_common::{Error, Result};
use csi_proto::v1::VolumeCapability;
use std::collections::HashMap;

/// What GetCapacity reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Bytes a new volume with these parameters can still get.
    pub available: u64,
    /// The smallest volume (one extent, or the filesystem's minimum).
    pub minimum_volume_size: u64,
}

/// Bytes thin volumes may still be promised in `pool` (see [`space::thin_headroom`]).
pub fn thin_available(lvs: &[LvRow], pool: &str, overprovision: f64) -> Result<u64> {
    space::thin_headroom(lvs, pool, overprovision)
}

/// The claim of `bytes` more virtual size in the thin pool `pool`, with the configured ratio
/// and zeroing policy.
pub fn thin_claim<'a>(ctx: &Ctx, pool: &'a str, bytes: u64) -> Claim<'a> {
    Claim::Thin {
        pool,
        bytes,
        ratio: ctx.settings.thin_overprovision,
        zeroing_required: !ctx.settings.allow_unzeroed_thin_pool,
    }
}

/// Bytes available for a volume with `thin` in the surveyed VG.
pub fn available(ctx: &Ctx, survey: &Survey, thin: bool) -> Result<u64> {
    if !thin {
        return Ok(survey.vg.free);
    }
    let pool = ctx
        .settings
        .thin_pool
        .as_deref()
        .ok_or_else(|| Error::invalid_argument("thin=true but no thin pool is configured"))?;
    let headroom = thin_available(&survey.lvs, pool, ctx.settings.thin_overprovision)?;
    Ok(headroom.min(space::pool_free(space::pool_row(&survey.lvs, pool)?)))
}

/// GetCapacity: space for volumes with `parameters` and `capabilities` reachable from
/// `topology` (unsupported capabilities, or a topology this host does not serve: nothing is
/// available for them).
pub async fn get_capacity(
    ctx: &Ctx,
    capabilities: &[VolumeCapability],
    parameters: &HashMap<String, String>,
    topology: Option<&HashMap<String, String>>,
) -> Result<Capacity> {
    let params = params::parse(parameters, ctx.settings.thin_pool.as_deref())?;
    let lvm = ctx.lvm()?;
    // Space is offered only where the host is reachable: a fresh report then, not the ledger
    // (the thin pool's usage changes with every write; the read also resyncs the ledger and
    // the gauges). Elsewhere the answer is 0 and only the extent size is needed (the ledger's
    // VG row: no LVM process for each zone the capacity tracker asks about).
    let survey = if super::topology::serves(&ctx.settings.accessible_topology, topology) {
        Some(lvm.resync().await?)
    } else {
        None
    };
    let vg = match &survey {
        Some(survey) => survey.vg.clone(),
        None => lvm.vg().await?,
    };
    let Ok(caps) = capabilities
        .iter()
        .map(capability::parse)
        .collect::<Result<Vec<_>>>()
    else {
        return Ok(Capacity {
            available: 0,
            minimum_volume_size: vg.extent_size,
        });
    };
    let minimum = capability::minimum_bytes(&caps).max(vg.extent_size);
    let minimum = minimum.div_ceil(vg.extent_size.max(1)) * vg.extent_size.max(1);
    Ok(Capacity {
        available: match &survey {
            Some(survey) => available(ctx, survey, params.thin)?,
            None => 0,
        },
        minimum_volume_size: minimum,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{FakeHost, lv_row, pool_row};
    use csi_common::{Kind, testing::refused};

    #[test]
    fn thin_headroom_counts_promised_virtual_sizes() {
        let lvs = vec![
            pool_row(8 << 30),
            lv_row("csi-a-1", 3 << 30, Some("pool"), &[]),
        ];
        assert_eq!(thin_available(&lvs, "pool", 1.0).unwrap(), 5 << 30);
        assert_eq!(thin_available(&lvs, "pool", 2.0).unwrap(), 13 << 30);
        let big = vec![
            pool_row(1 << 30),
            lv_row("csi-a-1", 3 << 30, Some("pool"), &[]),
        ];
        assert_eq!(thin_available(&big, "pool", 1.0).unwrap(), 0);
        assert_eq!(
            thin_available(&lvs, "other", 1.0).unwrap_err().kind(),
            Kind::Unavailable
        );
    }

    #[tokio::test]
    async fn linear_capacity_is_vg_free_and_unknown_parameters_are_refused() {
        let host = FakeHost::new();
        host.expect_survey(10 << 30, 4 << 20, &[]);
        let cap = get_capacity(&host.ctx, &[], &HashMap::new(), None)
            .await
            .unwrap();
        assert_eq!(
            cap,
            Capacity {
                available: 10 << 30,
                minimum_volume_size: 4 << 20
            }
        );
        let bad = HashMap::from([("size".to_string(), "1".to_string())]);
        refused(
            get_capacity(&host.ctx, &[], &bad, None).await,
            Kind::InvalidArgument,
        );
        host.finish();
    }

    #[tokio::test]
    async fn xfs_minimum_and_thin_pool_capacity() {
        let host = FakeHost::new();
        host.expect_survey(
            10 << 30,
            4 << 20,
            &[
                pool_row(8 << 30),
                lv_row("csi-a-1", 1 << 30, Some("pool"), &[]),
            ],
        );
        let xfs = crate::ops::capability::mount(
            "xfs",
            csi_proto::v1::volume_capability::access_mode::Mode::SingleNodeWriter,
        );
        let thin = HashMap::from([("thin".to_string(), "true".to_string())]);
        let cap = get_capacity(&host.ctx, &[xfs], &thin, None).await.unwrap();
        assert_eq!(
            cap,
            Capacity {
                available: 7 << 30,
                minimum_volume_size: 300 << 20
            }
        );
        host.finish();
    }

    #[tokio::test]
    async fn thin_capacity_is_what_the_pool_can_still_store_and_zero_when_full() {
        let host = FakeHost::new();
        let thin = HashMap::from([("thin".to_string(), "true".to_string())]);
        let mut half = pool_row(1 << 30);
        half.data_percent = Some(75.0);
        host.expect_survey(10 << 30, 4 << 20, &[half.clone()]);
        let cap = get_capacity(&host.ctx, &[], &thin, None).await.unwrap();
        assert_eq!(cap.available, 256 << 20);
        half.data_percent = Some(100.0);
        host.expect_survey(10 << 30, 4 << 20, &[half]);
        let cap = get_capacity(&host.ctx, &[], &thin, None).await.unwrap();
        assert_eq!(cap.available, 0);
        host.finish();
    }

    #[tokio::test]
    async fn missing_volume_group_is_unavailable() {
        let host = FakeHost::new();
        host.expect_survey_missing();
        let err = refused(
            get_capacity(&host.ctx, &[], &HashMap::new(), None).await,
            Kind::Unavailable,
        );
        assert!(err.message().contains("carvevg"), "{err}");
        host.finish();
    }

    #[tokio::test]
    async fn a_topology_the_host_does_not_serve_has_no_capacity() {
        let host = FakeHost::in_topology("zone=a");
        let zone = |z: &str| HashMap::from([("zone".to_string(), z.to_string())]);
        host.expect_survey(10 << 30, 4 << 20, &[]);
        let here = get_capacity(&host.ctx, &[], &HashMap::new(), Some(&zone("a")))
            .await
            .unwrap();
        assert_eq!(here.available, 10 << 30);
        // No report for a zone the host does not serve: only the VG row (the ledger's, in the
        // controller; `vgs` for this ledger-less host), which the scripted runner enforces.
        host.expect_vgs(10 << 30, 4 << 20);
        let there = get_capacity(&host.ctx, &[], &HashMap::new(), Some(&zone("b")))
            .await
            .unwrap();
        assert_eq!(there.available, 0);
        assert_eq!(there.minimum_volume_size, 4 << 20);
        host.finish();
    }
}
