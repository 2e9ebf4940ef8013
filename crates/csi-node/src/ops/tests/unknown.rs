//! Unknown volumes and paths against the fakes (spec.md, each Node RPC's error table): an id
//! Carve never issued is NOT_FOUND on NodeStage, NodePublish, NodeGetVolumeStats and
//! NodeExpandVolume and OK (nothing touched) on NodeUnstage and NodeUnpublish; an empty field
//! stays INVALID_ARGUMENT; NodeGetVolumeStats answers NOT_FOUND for a path that does not hold
//! the volume.

use super::{Harness, VOL, ext4, harness, rpc};
use crate::filesystem::Probe;
use csi_common::{Kind, Result};
use csi_proto::v1::*;

const FOREIGN: &str = "fake-vol-id-3c6105c0-f";

fn kind<T: std::fmt::Debug>(r: Result<T>) -> Option<Kind> {
    r.err().map(|e| e.kind())
}

impl Harness {
    fn stats(&self, id: &str, path: &str) -> Option<Kind> {
        let req = NodeGetVolumeStatsRequest {
            volume_id: id.into(),
            volume_path: path.into(),
            staging_target_path: self.p("stage"),
        };
        kind(rpc::stats(&self.core, req))
    }
}

#[tokio::test]
async fn ids_carve_never_issued_are_unknown_on_every_node_rpc() {
    let h = harness(Ok(Probe::Empty));
    let mut stage = h.stage_req(ext4());
    stage.volume_id = FOREIGN.into();
    assert_eq!(
        kind(rpc::stage(&h.core, stage).await),
        Some(Kind::NotFound),
        "node_stage_volume__volume_not_found"
    );
    let mut publish = h.publish_req(ext4(), "pods/a", false);
    publish.volume_id = FOREIGN.into();
    assert_eq!(
        kind(rpc::publish(&h.core, publish).await),
        Some(Kind::NotFound),
        "node_publish_volume__volume_not_found"
    );
    let mut unstage = h.unstage_req();
    unstage.volume_id = FOREIGN.into();
    assert_eq!(
        kind(rpc::unstage(&h.core, unstage).await),
        None,
        "node_unstage_volume__not_staged_is_ok"
    );
    let unpublish = NodeUnpublishVolumeRequest {
        volume_id: FOREIGN.into(),
        target_path: h.p("pods/a"),
    };
    assert_eq!(
        kind(rpc::unpublish(&h.core, unpublish).await),
        None,
        "node_unpublish_volume__not_published_is_ok"
    );
    assert_eq!(
        h.stats(FOREIGN, &h.p("stage")),
        Some(Kind::NotFound),
        "node_get_volume_stats__volume_not_found"
    );
    let expand = NodeExpandVolumeRequest {
        volume_id: FOREIGN.into(),
        volume_path: h.p("stage"),
        ..Default::default()
    };
    assert_eq!(
        kind(rpc::expand(&h.core, expand).await),
        Some(Kind::NotFound),
        "node_expand_volume__volume_not_found"
    );
    assert!(h.mount_calls().is_empty(), "nothing mounted or unmounted");
    assert!(h.init.calls.lock().unwrap().is_empty(), "no iSCSI call");
    // Missing fields stay INVALID_ARGUMENT, also with a foreign id.
    let mut nopath = h.unstage_req();
    nopath.volume_id = FOREIGN.into();
    nopath.staging_target_path.clear();
    assert_eq!(
        kind(rpc::unstage(&h.core, nopath).await),
        Some(Kind::InvalidArgument)
    );
    assert_eq!(h.stats(FOREIGN, ""), Some(Kind::InvalidArgument));
    assert_eq!(h.stats("", &h.p("stage")), Some(Kind::InvalidArgument));
    let mut nocap = h.stage_req(ext4());
    nocap.volume_id = FOREIGN.into();
    nocap.volume_capability = None;
    assert_eq!(
        kind(rpc::stage(&h.core, nocap).await),
        Some(Kind::InvalidArgument)
    );
}

#[tokio::test]
async fn volume_stats_answer_only_for_the_volumes_own_paths() {
    let h = harness(Ok(Probe::Empty));
    h.expect_mkfs_ext4("/dev/sdb");
    h.stage_and_publish(&ext4(), "pods/a").await;
    std::fs::create_dir(h.root.join("pods/other")).unwrap();
    assert_eq!(h.stats(VOL, &h.p("stage")), None, "the staging path");
    assert_eq!(h.stats(VOL, &h.p("pods/a")), None, "a publish target");
    for (case, path) in [
        (
            "node_get_volume_stats__relative_path",
            "some/path".to_string(),
        ),
        ("node_get_volume_stats__missing_path", h.p("pods/nowhere")),
        (
            "node_get_volume_stats__path_of_no_volume",
            h.p("pods/other"),
        ),
        (
            "node_get_volume_stats__unnormalized_path",
            h.p("pods/../stage"),
        ),
    ] {
        assert_eq!(h.stats(VOL, &path), Some(Kind::NotFound), "{case}");
    }
    let relative = NodeExpandVolumeRequest {
        volume_id: VOL.into(),
        volume_path: "some/path".into(),
        ..Default::default()
    };
    assert_eq!(
        kind(rpc::expand(&h.core, relative).await),
        Some(Kind::NotFound),
        "node_expand_volume__relative_path"
    );
}

#[tokio::test]
async fn block_stats_answer_for_the_publish_target_even_after_the_disk_is_gone() {
    use super::block_cap;
    use csi_proto::v1::volume_capability::access_mode::Mode;
    let h = harness(Ok(Probe::Empty));
    let block = block_cap(Mode::SingleNodeWriter);
    h.stage_and_publish(&block, "pods/dev").await;
    std::fs::write(h.root.join("pods/file"), b"").unwrap();
    assert_eq!(h.stats(VOL, &h.p("pods/dev")), None, "the device bind");
    assert_eq!(
        h.stats(VOL, &h.p("pods/file")),
        Some(Kind::NotFound),
        "node_get_volume_stats__path_of_no_volume (block)"
    );
    // The kernel dropped the disk: the bind mount stays, its root now `/sdb//deleted`.
    for m in h.mounts.table.lock().unwrap().iter_mut() {
        if m.root == "/sdb" {
            m.root = "/sdb//deleted".into();
        }
    }
    h.init.sessions.lock().unwrap().clear();
    let req = NodeGetVolumeStatsRequest {
        volume_id: VOL.into(),
        volume_path: h.p("pods/dev"),
        staging_target_path: h.p("stage"),
    };
    let sick = rpc::stats(&h.core, req).unwrap();
    assert!(
        sick.volume_condition.is_some_and(|c| c.abnormal),
        "still this volume's path: reported abnormal, not NOT_FOUND"
    );
}
