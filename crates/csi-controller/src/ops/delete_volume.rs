//! DeleteVolume: ACLs, target, storage object, then the LV.
//!
//! Invariants: a thin LV is removed (its pool zeroes chunks it provisions anew); a linear LV is
//! renamed into quarantine and zeroed then removed by [`crate::wiper`] in the background, so
//! DeleteVolume stays fast and no new volume is ever carved from unzeroed extents; an unknown or malformed-but-not-empty id is `Ok(NotFound)`; every step tolerates
//! its object being gone already, so a retry completes an interrupted delete; an LV without
//! Carve's marker tag is never removed; snapshots: a thin volume's thin snapshots are
//! independent LVs in LVM and survive the delete (as CSI prefers), while a linear volume with
//! classic (COW) snapshots, which `lvremove` would destroy with it, is refused with
//! `FailedPrecondition` and left untouched.

use super::{Ctx, volume};
use crate::lvm::quarantine;
use csi_common::{Error, Result};
use tracing::info;

/// What DeleteVolume did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The volume existed (its LV or some of its LIO objects) and is gone now.
    Deleted,
    /// Nothing of it existed.
    NotFound,
}

/// DeleteVolume.
pub async fn delete_volume(ctx: &Ctx, raw_id: &str) -> Result<Deleted> {
    let Some(id) = volume::parse_id(raw_id)? else {
        return Ok(Deleted::NotFound);
    };
    let lvm = ctx.lvm()?;
    let lv = id.lv_name();
    let row = lvm.get(&lv).await?;
    let mut stamp = 0;
    if let Some(row) = &row {
        if volume::Volume::from_row(row.clone())?.is_none() {
            return Err(Error::failed_precondition(format!(
                "LV {lv} does not carry Carve's tags; refusing to delete it"
            )));
        }
        if row.pool.is_none() {
            let rows = lvm.list().await?;
            let snapshots: Vec<String> = rows
                .iter()
                .filter(|r| r.origin.as_deref() == Some(lv.as_str()))
                .map(|r| r.name.clone())
                .collect();
            if !snapshots.is_empty() {
                return Err(Error::failed_precondition(format!(
                    "volume {id} has snapshots {snapshots:?} that would be destroyed with it; delete them first"
                )));
            }
            stamp = quarantine::next_stamp(&rows, &lv);
        }
    }
    let target = ctx.settings.iqn_prefix.target_for(&id);
    let unexported = ctx.lio.remove_export(&target, id.as_str()).await?;
    let removed = match row {
        // Linear extents go back to the VG: zeroed first, in the background (crate::wiper).
        Some(row) if row.pool.is_none() => {
            let quarantined = lvm.quarantine(&lv, stamp).await?.is_some();
            ctx.wipe_requested();
            quarantined
        }
        // Thin: the pool zeroes every chunk it provisions anew (checked, see get_capacity).
        Some(_) => lvm.remove(&lv).await?,
        None => false,
    };
    if unexported || removed {
        info!(volume = %id, lv = %lv, "deleted volume");
        Ok(Deleted::Deleted)
    } else {
        Ok(Deleted::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{FakeHost, carve_tags, lv_row};
    use csi_common::{Kind, testing::refused};

    /// DeleteVolume of `id` deletes it, and nothing stays exported.
    async fn assert_deleted(host: &FakeHost, id: &str) {
        assert_eq!(
            delete_volume(&host.ctx, id).await.unwrap(),
            Deleted::Deleted
        );
        assert!(host.configfs_is_empty(), "{:?}", host.configfs_tree());
    }

    /// DeleteVolume of `id`, whose LV LVM no longer has: OK, as not found.
    async fn assert_gone(host: &FakeHost, id: &str) {
        host.expect_lvs_one(id, &[]);
        assert_eq!(
            delete_volume(&host.ctx, id).await.unwrap(),
            Deleted::NotFound
        );
    }

    #[tokio::test]
    async fn unknown_and_foreign_ids_are_ok() {
        let host = FakeHost::new();
        assert_eq!(
            delete_volume(&host.ctx, "no-such-volume").await.unwrap(),
            Deleted::NotFound
        );
        refused(delete_volume(&host.ctx, "").await, Kind::InvalidArgument);
        assert_gone(&host, "csi-gone-1").await;
        host.finish();
    }

    #[tokio::test]
    async fn removes_export_then_lv_and_is_idempotent() {
        let host = FakeHost::new();
        let row = lv_row("csi-v-1", 8 << 20, Some("pool"), &carve_tags("v"));
        host.export(&row).await;
        host.expect_lvs_one("csi-v-1", std::slice::from_ref(&row));
        host.expect_lvremove("csi-v-1");
        assert_deleted(&host, "csi-v-1").await;
        assert_gone(&host, "csi-v-1").await;
        host.finish();
    }

    #[tokio::test]
    async fn a_linear_volume_is_quarantined_not_removed_and_is_gone_at_once() {
        let host = FakeHost::new();
        let row = host.export_linear("csi-v-1", &carve_tags("v")).await;
        host.expect_lvs_one("csi-v-1", std::slice::from_ref(&row));
        host.expect_lvs(std::slice::from_ref(&row));
        let lv = csi_common::ids::LvName::parse("csi-v-1").unwrap();
        let rename = crate::lvm::argv::lvrename(
            crate::ops::testing::VG,
            &lv,
            &quarantine::name_for(&lv, 0),
            std::time::Duration::from_secs(5),
        );
        host.expect(csi_common::command::Expectation::of(&rename));
        assert_deleted(&host, "csi-v-1").await;
        host.finish();
    }

    #[tokio::test]
    async fn half_deleted_volume_is_finished() {
        let host = FakeHost::new();
        host.export_linear("csi-v-1", &carve_tags("v")).await;
        host.expect_lvs_one("csi-v-1", &[]);
        assert_deleted(&host, "csi-v-1").await;
        host.finish();
    }

    #[tokio::test]
    async fn foreign_lv_and_classic_snapshots_are_refused() {
        let host = FakeHost::new();
        host.expect_lvs_one("csi-x-1", &[lv_row("csi-x-1", 8 << 20, None, &[])]);
        refused(
            delete_volume(&host.ctx, "csi-x-1").await,
            Kind::FailedPrecondition,
        );
        let origin = lv_row("csi-v-1", 8 << 20, None, &carve_tags("v"));
        let mut snap = lv_row("snap-s-1", 8 << 20, None, &[]);
        snap.origin = Some("csi-v-1".into());
        host.expect_lvs_one("csi-v-1", std::slice::from_ref(&origin));
        host.expect_lvs(&[origin, snap]);
        let err = refused(
            delete_volume(&host.ctx, "csi-v-1").await,
            Kind::FailedPrecondition,
        );
        assert!(err.message().contains("snap-s-1"), "{err}");
        host.finish();
    }
}
