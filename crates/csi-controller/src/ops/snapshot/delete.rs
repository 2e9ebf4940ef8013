//! DeleteSnapshot: removes the snapshot LV.
//!
//! Invariants: an unknown or malformed-but-not-empty id is `Ok(NotFound)` (spec: OK); an LV
//! named like a snapshot but without Carve's snapshot record is never removed
//! (`FailedPrecondition`); volumes restored from the snapshot are thin snapshots of it, which
//! dm-thin keeps independent, so they are unaffected and never block the delete.

use super::{Snapshot, parse_id};
use crate::ops::{Ctx, delete_volume::Deleted};
use csi_common::{Error, Result};
use tracing::info;

/// DeleteSnapshot.
pub async fn delete_snapshot(ctx: &Ctx, raw_id: &str) -> Result<Deleted> {
    let Some(id) = parse_id(raw_id)? else {
        return Ok(Deleted::NotFound);
    };
    let lvm = ctx.lvm()?;
    let Some(row) = lvm.get(&id).await? else {
        return Ok(Deleted::NotFound);
    };
    let snapshot = Snapshot::from_row(row)?.ok_or_else(|| {
        Error::failed_precondition(format!(
            "LV {id} does not carry Carve's snapshot tags; refusing to delete it"
        ))
    })?;
    if !lvm.remove(&id).await? {
        return Ok(Deleted::NotFound);
    }
    info!(snapshot = %id, volume = %snapshot.record.source_volume, "deleted snapshot");
    Ok(Deleted::Deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{
        snapshot::testing::snap_row,
        testing::{FakeHost, lv_row},
    };
    use csi_common::{Kind, testing::refused};

    #[tokio::test]
    async fn deletes_then_answers_ok_for_gone_unknown_and_malformed_ids() {
        let host = FakeHost::new();
        host.expect_lvs_one("snap-s-1", &[snap_row("snap-s-1", 8 << 20, "s", "csi-v-1")]);
        host.expect_lvremove("snap-s-1");
        assert_eq!(
            delete_snapshot(&host.ctx, "snap-s-1").await.unwrap(),
            Deleted::Deleted
        );
        host.expect_lvs_one("snap-s-1", &[]);
        assert_eq!(
            delete_snapshot(&host.ctx, "snap-s-1").await.unwrap(),
            Deleted::NotFound
        );
        for raw in ["csi-v-1", "no such id", "snap-"] {
            assert_eq!(
                delete_snapshot(&host.ctx, raw).await.unwrap(),
                Deleted::NotFound,
                "{raw}"
            );
        }
        refused(delete_snapshot(&host.ctx, "").await, Kind::InvalidArgument);
        host.finish();
    }

    #[tokio::test]
    async fn an_lv_without_the_snapshot_record_is_never_removed() {
        let host = FakeHost::new();
        host.expect_lvs_one(
            "snap-s-1",
            &[lv_row("snap-s-1", 8 << 20, Some("pool"), &[])],
        );
        let unrecorded = delete_snapshot(&host.ctx, "snap-s-1").await;
        refused(unrecorded, Kind::FailedPrecondition);
        host.finish();
    }

    #[tokio::test]
    async fn removed_between_lookup_and_lvremove_is_ok() {
        let host = FakeHost::new();
        host.expect_lvs_one("snap-s-1", &[snap_row("snap-s-1", 8 << 20, "s", "csi-v-1")]);
        let lv = csi_common::ids::LvName::parse("snap-s-1").unwrap();
        let argv = crate::lvm::argv::lvremove(
            crate::ops::testing::VG,
            &lv,
            std::time::Duration::from_secs(5),
        );
        host.expect(csi_common::command::Expectation::of(&argv).fails(
            5,
            include_str!("../../../../../tests/fixtures/controller/lvremove-missing.stderr"),
        ));
        assert_eq!(
            delete_snapshot(&host.ctx, "snap-s-1").await.unwrap(),
            Deleted::NotFound
        );
        host.finish();
    }
}
