//! ListVolumes with pagination, and ControllerGetVolume's status, from LVM and LIO.
//!
//! Invariants: entries are sorted by volume id; `next_token` is the id of the first entry of
//! the next page, so pages stay correct when volumes come and go in between; a token that is
//! not a Carve volume id is `Aborted` (spec); published nodes come from the ACLs (and the
//! publication tags); every entry carries its condition: the storage's (LV health, thin pool
//! full or faulted, see [`condition`]) before the export's.

use super::{
    Ctx, condition,
    volume::{self, Volume},
};
use crate::{lio::LioState, lvm::LvRow};
use csi_common::{Error, Result, ids::VolumeId};

/// A volume with what ListVolumes/ControllerGetVolume report about it.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeStatus {
    /// The volume.
    pub volume: Volume,
    /// Nodes it is published to.
    pub published_nodes: Vec<String>,
    /// Why it is not usable, if it is not.
    pub abnormal: Option<String>,
}

/// The status of `volume` given the LIO state.
pub fn status(ctx: &Ctx, volume: Volume, lio: &LioState) -> VolumeStatus {
    let target = volume.target_iqn(&ctx.settings.iqn_prefix);
    VolumeStatus {
        published_nodes: volume
            .published_nodes(lio.target(target.as_str()))
            .into_iter()
            .collect(),
        abnormal: volume.abnormal(ctx, lio),
        volume,
    }
}

/// One page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The entries.
    pub entries: Vec<VolumeStatus>,
    /// The token for the next page (`""`: none).
    pub next_token: String,
}

/// ListVolumes.
pub async fn list_volumes(ctx: &Ctx, max_entries: i32, starting_token: &str) -> Result<Page> {
    if max_entries < 0 {
        return Err(Error::invalid_argument("max_entries must not be negative"));
    }
    let start = match starting_token {
        "" => None,
        token => Some(
            VolumeId::parse(token)
                .map_err(|_| Error::aborted(format!("starting_token {token:?} is not valid")))?,
        ),
    };
    // A fresh report (which resyncs the ledger): ListVolumes is the operators' view, and must
    // show an LV made by hand at once (`carvectl orphans`); it is not on any hot path.
    let rows = ctx.lvm()?.resync().await?.lvs;
    let pools: Vec<LvRow> = rows.iter().filter(|r| r.is_thin_pool()).cloned().collect();
    let mut volumes = Vec::new();
    for row in rows {
        volumes.extend(Volume::from_row(row)?);
    }
    volumes.sort_by(|a, b| a.id.cmp(&b.id));
    let lio = ctx.lio.state().await?;
    let mut rest = volumes
        .into_iter()
        .filter(|v| start.as_ref().is_none_or(|s| &v.id >= s))
        .peekable();
    // Not negative (checked above); 0 means no limit.
    let limit = match usize::try_from(max_entries) {
        Ok(0) | Err(_) => usize::MAX,
        Ok(n) => n,
    };
    let mut entries = Vec::new();
    while entries.len() < limit {
        match rest.next() {
            Some(v) => entries.push(with_storage(status(ctx, v, &lio), &pools)),
            None => break,
        }
    }
    let next_token = rest.peek().map(|v| v.id.to_string()).unwrap_or_default();
    Ok(Page {
        entries,
        next_token,
    })
}

/// ControllerGetVolume.
pub async fn get_volume(ctx: &Ctx, raw_id: &str) -> Result<VolumeStatus> {
    let id = volume::parse_id(raw_id)?
        .ok_or_else(|| Error::not_found(format!("volume {raw_id:?} does not exist")))?;
    let vol = volume::find(ctx, &id)
        .await?
        .ok_or_else(|| Error::not_found(format!("volume {id} does not exist")))?;
    let pools = pools(ctx, &vol).await?;
    let lio = ctx.lio.state().await?;
    Ok(with_storage(status(ctx, vol, &lio), &pools))
}

/// The thin pool of `volume`, if it is thin and the pool exists.
async fn pools(ctx: &Ctx, volume: &Volume) -> Result<Vec<LvRow>> {
    match volume.lv.pool.as_deref() {
        Some(name) => Ok(ctx.lvm()?.pool(name).await?.into_iter().collect()),
        None => Ok(Vec::new()),
    }
}

/// `status` with the storage's condition first (LV health, thin pool full or faulted).
fn with_storage(mut status: VolumeStatus, pools: &[LvRow]) -> VolumeStatus {
    let pool = status
        .volume
        .lv
        .pool
        .as_deref()
        .and_then(|name| pools.iter().find(|row| row.name == name));
    if let Some(why) = condition::storage_abnormal(&status.volume, pool) {
        status.abnormal = Some(why);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{FakeHost, NODE1, carve_tags, lv_row, pool_row};
    use csi_common::{Kind, testing::refused};

    #[tokio::test]
    async fn pages_through_volumes_with_published_nodes_and_condition() {
        let host = FakeHost::new();
        let rows = vec![
            pool_row(8 << 30),
            lv_row("csi-a-1", 8 << 20, Some("pool"), &carve_tags("a")),
            lv_row("csi-b-1", 8 << 20, None, &carve_tags("b")),
            lv_row("csi-c-1", 8 << 20, None, &carve_tags("c")),
            lv_row("other", 8 << 20, None, &[]),
        ];
        host.export(&rows[1]).await;
        host.add_acl("csi-a-1", NODE1).await;
        host.expect_survey(1 << 30, 4 << 20, &rows);
        let page = list_volumes(&host.ctx, 2, "").await.unwrap();
        let ids: Vec<_> = page
            .entries
            .iter()
            .map(|e| e.volume.id.to_string())
            .collect();
        assert_eq!(ids, ["csi-a-1", "csi-b-1"]);
        assert_eq!(page.entries[0].published_nodes, [NODE1]);
        assert_eq!(page.entries[0].abnormal, None);
        assert!(
            page.entries[1]
                .abnormal
                .as_deref()
                .unwrap()
                .contains("storage object missing")
        );
        assert_eq!(page.next_token, "csi-c-1");
        host.expect_survey(1 << 30, 4 << 20, &rows);
        let last = list_volumes(&host.ctx, 2, &page.next_token).await.unwrap();
        assert_eq!(last.entries.len(), 1);
        assert_eq!(last.next_token, "");
        let bad = list_volumes(&host.ctx, 0, "garbage!").await.unwrap_err();
        assert_eq!(bad.kind(), Kind::Aborted);
        refused(list_volumes(&host.ctx, -1, "").await, Kind::InvalidArgument);
        host.finish();
    }

    #[tokio::test]
    async fn get_volume_reports_not_found_and_condition() {
        let host = FakeHost::new();
        host.expect_lvs_one("csi-a-1", &[]);
        refused(get_volume(&host.ctx, "csi-a-1").await, Kind::NotFound);
        refused(get_volume(&host.ctx, "bogus").await, Kind::NotFound);
        let mut row = lv_row("csi-a-1", 8 << 20, None, &carve_tags("a"));
        host.export(&row).await;
        row.attr = "-wi-------".into();
        host.expect_lvs_one("csi-a-1", &[row]);
        let status = get_volume(&host.ctx, "csi-a-1").await.unwrap();
        assert!(status.abnormal.unwrap().contains("not active"));
        host.finish();
    }

    #[tokio::test]
    async fn a_thin_volume_in_a_full_pool_is_abnormal_in_both_rpcs() {
        let host = FakeHost::new();
        let mut full = pool_row(64 << 20);
        full.data_percent = Some(100.0);
        let thin = lv_row("csi-a-1", 8 << 20, Some("pool"), &carve_tags("a"));
        host.export(&thin).await;
        host.expect_survey(1 << 30, 4 << 20, &[full.clone(), thin.clone()]);
        let page = list_volumes(&host.ctx, 0, "").await.unwrap();
        let why = page.entries[0].abnormal.clone().unwrap_or_default();
        assert!(why.contains("thin pool pool is full"), "{why:?}");
        host.expect_lvs_one("csi-a-1", &[thin]);
        let cmd = crate::lvm::argv::lvs("carvevg/pool", std::time::Duration::from_secs(5));
        host.expect(
            csi_common::command::Expectation::of(&cmd)
                .stdout(crate::ops::testing::lvs_json(&[full])),
        );
        let status = get_volume(&host.ctx, "csi-a-1").await.unwrap();
        let why = status.abnormal.unwrap_or_default();
        assert!(why.contains("thin pool pool is full"), "{why:?}");
        host.finish();
    }
}
