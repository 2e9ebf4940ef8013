//! ControllerUnpublishVolume: removes that node's ACL, which ends its iSCSI sessions (the fence).
//!
//! Invariants: the publication tag is removed *before* the ACL, so a reboot in between never
//! re-grants access that was revoked; saveconfig.json is rewritten before the answer, so the
//! distribution's restore service never restores a revoked ACL either; an unknown volume or node, or a node that was not
//! published, is `Ok(false)`; an empty node id unpublishes every node.

use super::{Ctx, volume};
use csi_common::{Result, ids::NodeId};
use tracing::info;

/// ControllerUnpublishVolume; `Ok(true)` if some access was revoked.
pub async fn unpublish(ctx: &Ctx, raw_volume: &str, raw_node: &str) -> Result<bool> {
    let Some(id) = volume::parse_id(raw_volume)? else {
        return Ok(false);
    };
    let only: Option<NodeId> = if raw_node.is_empty() {
        None
    } else {
        match volume::parse_node(raw_node)? {
            Some(node) => Some(node),
            None => return Ok(false),
        }
    };
    let lvm = ctx.lvm()?;
    let target = ctx.settings.iqn_prefix.target_for(&id);
    let selected = |node: &str| only.as_ref().is_none_or(|n| n.as_str() == node);
    let mut revoked = false;
    if let Some(vol) = volume::find(ctx, &id).await? {
        for publication in vol
            .record
            .published
            .iter()
            .filter(|p| selected(p.node.as_str()))
        {
            lvm.set_tag(&vol.lv_name(), &publication.tag(), false)
                .await?;
            revoked = true;
        }
    }
    let state = ctx.lio.volume_state(&target, "").await?;
    let acls: Vec<String> = state
        .target(target.as_str())
        .map(|t| t.acls.iter().map(|a| a.initiator.clone()).collect())
        .unwrap_or_default();
    for initiator in acls.iter().filter(|i| selected(i)) {
        let node = NodeId::parse(initiator)?;
        if ctx.lio.remove_acl(&target, &node.initiator()).await? {
            info!(volume = %id, node = %node, "unpublished volume");
            revoked = true;
        }
    }
    // Answer only once saveconfig.json no longer grants it (a retry after a failed save
    // finds the handle still pending and saves again).
    ctx.lio_saved().await?;
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{FakeHost, NODE1, NODE2, carve_tags, linear_row};
    use csi_common::{Kind, testing::refused};

    #[tokio::test]
    async fn removes_tag_then_acl_and_is_idempotent() {
        let host = FakeHost::new();
        let row = host.published_linear("csi-v-1", "v", NODE1).await;
        host.add_acl("csi-v-1", NODE2).await;
        host.expect_lvs_one("csi-v-1", std::slice::from_ref(&row));
        host.expect_tag("csi-v-1", &format!("carve.pub=rw:{NODE1}"), false);
        assert!(unpublish(&host.ctx, "csi-v-1", NODE1).await.unwrap());
        assert_eq!(host.acls("csi-v-1"), [NODE2], "only node1's ACL is gone");
        let untagged = linear_row("csi-v-1", &carve_tags("v"));
        host.expect_lvs_one("csi-v-1", &[untagged]);
        assert!(!unpublish(&host.ctx, "csi-v-1", NODE1).await.unwrap());
        host.finish();
    }

    #[tokio::test]
    async fn empty_node_unpublishes_everyone_and_unknowns_are_ok() {
        let host = FakeHost::new();
        let row = host.export_linear("csi-v-1", &carve_tags("v")).await;
        host.add_acl("csi-v-1", NODE1).await;
        host.add_acl("csi-v-1", NODE2).await;
        host.expect_lvs_one("csi-v-1", &[row]);
        assert!(unpublish(&host.ctx, "csi-v-1", "").await.unwrap());
        assert!(host.acls("csi-v-1").is_empty());
        assert!(!unpublish(&host.ctx, "not-a-volume", NODE1).await.unwrap());
        assert!(!unpublish(&host.ctx, "csi-v-1", "worker-1").await.unwrap());
        refused(unpublish(&host.ctx, "", NODE1).await, Kind::InvalidArgument);
        host.finish();
    }
}
