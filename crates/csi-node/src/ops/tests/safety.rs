//! Data safety against the fakes: raw data is never formatted, a read-only stage writes
//! nothing, unstage refuses while the disk is in use (changing nothing) and finishes when the
//! disk or its target is gone.

use super::{VOL, ext4, harness, rpc};
use crate::filesystem::Probe;
use csi_common::{Error, Kind};
use csi_proto::v1::{
    NodeExpandVolumeRequest, NodeGetVolumeStatsRequest, volume_capability::access_mode::Mode,
};

use super::{block_cap, mount_cap};

#[tokio::test]
async fn an_empty_looking_disk_the_controller_does_not_vouch_for_is_never_formatted() {
    for blank in [None, Some("false"), Some("yes")] {
        let h = harness(Ok(Probe::Empty));
        let mut req = h.stage_req(ext4());
        match blank {
            Some(v) => req.publish_context.insert("blank".into(), v.into()),
            None => req.publish_context.remove("blank"),
        };
        let err = rpc::stage(&h.core, req).await.unwrap_err();
        assert_eq!(err.kind(), Kind::FailedPrecondition, "{blank:?}");
        assert!(err.message().contains("raw data"), "{err}");
        h.runner.finish(); // no mkfs
        assert!(h.mount_calls().is_empty());
        assert!(h.init.sessions.lock().unwrap().is_empty(), "rolled back");
    }
}

#[tokio::test]
async fn a_readonly_stage_mounts_without_replay_and_runs_no_fsck_or_grow() {
    for (fs, option) in [("ext4", "noload"), ("xfs", "nouuid,norecovery")] {
        for (mode, ctx_readonly) in [
            (Mode::SingleNodeReaderOnly, false),
            (Mode::SingleNodeWriter, true),
        ] {
            let h = harness(Ok(Probe::Filesystem(fs.into())));
            let mut req = h.stage_req(mount_cap(fs, mode));
            if ctx_readonly {
                req.publish_context.insert("readonly".into(), "true".into());
            }
            rpc::stage(&h.core, req).await.unwrap();
            h.runner.finish(); // no e2fsck, resize2fs or xfs_growfs
            assert_eq!(
                h.mount_calls(),
                [format!("mount_fs /dev/sdb /stage {fs} {option}")]
            );
            assert!(h.mounts.table.lock().unwrap()[0].read_only(), "MS_RDONLY");
        }
    }
    let h = harness(Ok(Probe::Empty));
    let req = h.stage_req(mount_cap("ext4", Mode::SingleNodeReaderOnly));
    let err = rpc::stage(&h.core, req).await.unwrap_err();
    assert_eq!(
        err.kind(),
        Kind::FailedPrecondition,
        "nothing to mount read-only"
    );
    h.runner.finish();
}

#[tokio::test]
async fn unstage_refuses_while_a_holder_sits_on_the_disk_and_changes_nothing() {
    let h = harness(Err("block volumes are not probed".into()));
    let cap = block_cap(Mode::SingleNodeWriter);
    rpc::stage(&h.core, h.stage_req(cap)).await.unwrap();
    let holder = h.root.join("sys/class/block/sdb/holders/dm-7");
    std::fs::create_dir_all(&holder).unwrap();
    let err = rpc::unstage(&h.core, h.unstage_req()).await.unwrap_err();
    assert_eq!(err.kind(), Kind::FailedPrecondition);
    assert!(err.message().contains("dm-7"), "{err}");
    assert!(
        h.devs.calls.lock().unwrap().is_empty(),
        "no flush, no delete"
    );
    assert_eq!(h.init.sessions.lock().unwrap().len(), 1, "still logged in");
    assert!(h.staged());
    std::fs::remove_dir(&holder).unwrap();
    rpc::unstage(&h.core, h.unstage_req()).await.unwrap();
    assert!(!h.staged() && h.init.sessions.lock().unwrap().is_empty());
}

#[tokio::test]
async fn unstage_refuses_while_mounted_in_another_namespace() {
    let h = harness(Ok(Probe::Filesystem("ext4".into())));
    h.expect_existing_ext4();
    rpc::stage(&h.core, h.stage_req(ext4())).await.unwrap();
    let pid = h.root.join("proc/4242");
    std::fs::create_dir_all(pid.join("ns")).unwrap();
    std::os::unix::fs::symlink("mnt:[9]", pid.join("ns/mnt")).unwrap();
    let line = format!("50 1 8:16 / {} rw - ext4 /dev/sdb rw\n", h.p("stage"));
    std::fs::write(pid.join("mountinfo"), line).unwrap();
    let err = rpc::unstage(&h.core, h.unstage_req()).await.unwrap_err();
    assert_eq!(err.kind(), Kind::FailedPrecondition);
    assert!(err.message().contains("pid 4242"), "{err}");
    assert_eq!(
        h.mount_calls(),
        ["mount_fs /dev/sdb /stage ext4 "],
        "nothing unmounted"
    );
    std::fs::remove_file(pid.join("mountinfo")).unwrap();
    std::fs::remove_file(pid.join("ns/mnt")).unwrap();
    rpc::unstage(&h.core, h.unstage_req()).await.unwrap();
    assert!(!h.staged());
}

#[tokio::test]
async fn unstage_finishes_when_the_disk_is_gone_or_unreachable() {
    let cap = block_cap(Mode::SingleNodeWriter);
    let h = harness(Err("not probed".into()));
    rpc::stage(&h.core, h.stage_req(cap.clone())).await.unwrap();
    *h.devs.present.lock().unwrap() = false;
    rpc::unstage(&h.core, h.unstage_req()).await.unwrap();
    assert!(
        h.devs.calls.lock().unwrap().is_empty(),
        "no flush of a vanished disk"
    );
    assert!(h.init.sessions.lock().unwrap().is_empty());
    assert!(h.init.records.lock().unwrap().is_empty());
    assert!(!h.staged());

    let h = harness(Err("not probed".into()));
    rpc::stage(&h.core, h.stage_req(cap.clone())).await.unwrap();
    *h.devs.flush_error.lock().unwrap() = Some(Error::internal(
        "blockdev --flushbufs /dev/sdb: No such device or address",
    ));
    rpc::unstage(&h.core, h.unstage_req()).await.unwrap();
    assert_eq!(*h.devs.calls.lock().unwrap(), ["flush sdb", "delete sdb"]);
    assert!(!h.staged() && h.init.sessions.lock().unwrap().is_empty());

    let h = harness(Err("not probed".into()));
    rpc::stage(&h.core, h.stage_req(cap)).await.unwrap();
    *h.devs.flush_error.lock().unwrap() = Some(Error::internal("blockdev: Input/output error"));
    let err = rpc::unstage(&h.core, h.unstage_req()).await.unwrap_err();
    assert_eq!(
        err.kind(),
        Kind::Internal,
        "a reachable disk that fails to flush"
    );
    assert!(h.staged(), "the record stays for the retry");
}

#[tokio::test]
async fn a_readonly_block_publication_binds_a_readonly_view_removed_on_unpublish() {
    let h = harness(Err("not probed".into()));
    let cap = block_cap(Mode::SingleNodeMultiWriter);
    rpc::stage(&h.core, h.stage_req(cap.clone())).await.unwrap();
    for _ in 0..2 {
        rpc::publish(&h.core, h.publish_req(cap.clone(), "pods/ro", true))
            .await
            .unwrap();
    }
    rpc::publish(&h.core, h.publish_req(cap.clone(), "pods/rw", false))
        .await
        .unwrap();
    assert_eq!(
        h.mount_calls(),
        ["bind /dev/dm-9 /pods/ro ro", "bind /dev/sdb /pods/rw rw"],
        "the read-only publication never binds the disk itself"
    );
    let view = crate::device::readonly::view_name(VOL, &h.root.join("pods/ro"));
    assert_eq!(*h.devs.views.lock().unwrap(), std::slice::from_ref(&view));
    for t in ["pods/ro", "pods/rw"] {
        let req = csi_proto::v1::NodeUnpublishVolumeRequest {
            volume_id: VOL.into(),
            target_path: h.p(t),
        };
        rpc::unpublish(&h.core, req).await.unwrap();
    }
    assert!(h.devs.views.lock().unwrap().is_empty(), "view removed");
    assert!(
        h.devs
            .calls
            .lock()
            .unwrap()
            .contains(&format!("remove view {view}"))
    );
}

#[tokio::test]
async fn paths_outside_the_kubelet_directory_and_files_publish_did_not_make() {
    let h = harness(Ok(Probe::Filesystem("ext4".into())));
    h.expect_existing_ext4();
    rpc::stage(&h.core, h.stage_req(ext4())).await.unwrap();
    let mut outside = h.publish_req(ext4(), "pods/a", false);
    outside.target_path = "/tmp/carve-outside".into();
    let err = rpc::publish(&h.core, outside).await.unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidArgument, "{err}");
    let unpublish = |t: &str| csi_proto::v1::NodeUnpublishVolumeRequest {
        volume_id: VOL.into(),
        target_path: t.into(),
    };
    let err = rpc::unpublish(&h.core, unpublish("/etc/hostname"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidArgument);
    let file = h.root.join("pods/data.txt");
    std::fs::write(&file, "user data").unwrap();
    rpc::unpublish(&h.core, unpublish(&h.p("pods/data.txt")))
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "user data");
    let stats = csi_proto::v1::NodeGetVolumeStatsRequest {
        volume_id: VOL.into(),
        volume_path: "/etc".into(),
        staging_target_path: String::new(),
    };
    let err = rpc::stats(&h.core, stats).unwrap_err();
    assert_eq!(err.kind(), Kind::NotFound);
}

/// NodeStageVolume(staging_target_path="/etc") with a mount capability would mount the volume
/// over a host directory: every Node RPC refuses a staging or volume path outside the kubelet
/// directory before anything is read or written there. Those that act on the path answer
/// INVALID_ARGUMENT (as target_path), those that ask about it NOT_FOUND (no volume is there).
#[tokio::test]
async fn staging_and_volume_paths_outside_the_kubelet_directory_are_refused() {
    let mut h = harness(Ok(Probe::Filesystem("ext4".into())));
    // The kubelet directory is pods/: stage/ lies outside it.
    h.core.kubelet_dir = h.root.join("pods");
    let err = rpc::stage(&h.core, h.stage_req(ext4())).await.unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidArgument, "{err}");
    assert!(
        err.message().contains("not under the kubelet directory"),
        "{err}"
    );
    assert!(!h.staged(), "no stage record");
    assert!(h.init.records.lock().unwrap().is_empty(), "no node record");
    assert!(h.init.sessions.lock().unwrap().is_empty(), "no login");
    assert!(h.mount_calls().is_empty(), "nothing mounted over it");

    // A volume staged at stage/ while the kubelet directory was wider (an older plugin, another
    // --kubelet-dir), published at pods/a: stage/ is outside now, and every RPC says so.
    h.core.kubelet_dir = h.root.clone();
    h.expect_existing_ext4();
    h.stage_and_publish(&ext4(), "pods/a").await;
    h.runner.finish();
    h.core.kubelet_dir = h.root.join("pods");
    let calls = h.mount_calls();

    let err = rpc::stage(&h.core, h.stage_req(ext4())).await.unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidArgument, "re-stage: {err}");
    let err = rpc::publish(&h.core, h.publish_req(ext4(), "pods/b", false))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidArgument, "publish: {err}");

    let stats = |volume_path: &str, staging: &str| NodeGetVolumeStatsRequest {
        volume_id: VOL.into(),
        volume_path: h.p(volume_path),
        staging_target_path: if staging.is_empty() {
            String::new()
        } else {
            h.p(staging)
        },
    };
    rpc::stats(&h.core, stats("pods/a", "")).expect("the publish target is inside");
    for (volume_path, staging) in [("pods/a", "stage"), ("stage", ""), ("stage", "stage")] {
        let err = rpc::stats(&h.core, stats(volume_path, staging)).unwrap_err();
        assert_eq!(
            err.kind(),
            Kind::NotFound,
            "stats {volume_path} {staging}: {err}"
        );
    }

    let expand = |volume_path: &str, staging: &str| NodeExpandVolumeRequest {
        volume_id: VOL.into(),
        volume_path: h.p(volume_path),
        staging_target_path: h.p(staging),
        ..Default::default()
    };
    for (volume_path, staging) in [("pods/a", "stage"), ("stage", "stage")] {
        let err = rpc::expand(&h.core, expand(volume_path, staging))
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            Kind::NotFound,
            "expand {volume_path} {staging}: {err}"
        );
    }
    assert!(
        !h.devs
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.starts_with("rescan")),
        "nothing rescanned"
    );

    // NodeUnstage of the path the record holds is not refused for where it lies (the volume
    // could never be torn down otherwise); here it is refused because pods/a still uses it.
    let err = rpc::unstage(&h.core, h.unstage_req()).await.unwrap_err();
    assert_eq!(err.kind(), Kind::FailedPrecondition, "unstage: {err}");
    assert!(h.staged(), "the stage record stays");
    assert_eq!(h.mount_calls(), calls, "nothing mounted or unmounted");
    h.runner.finish(); // no tool ran
}

#[tokio::test]
async fn a_filesystem_that_went_read_only_is_not_published_and_stats_say_why() {
    let h = harness(Ok(Probe::Filesystem("ext4".into())));
    h.expect_existing_ext4();
    h.stage_and_publish(&ext4(), "pods/a").await;
    std::fs::create_dir_all(h.root.join("pods/a")).unwrap();
    for m in h.mounts.table.lock().unwrap().iter_mut() {
        m.super_options = vec!["ro".into(), "errors=remount-ro".into()];
    }
    let err = rpc::publish(&h.core, h.publish_req(ext4(), "pods/b", false))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::FailedPrecondition);
    assert!(err.message().contains("went read-only"), "{err}");
    let stats = csi_proto::v1::NodeGetVolumeStatsRequest {
        volume_id: VOL.into(),
        volume_path: h.p("pods/a"),
        staging_target_path: h.p("stage"),
    };
    let condition = rpc::stats(&h.core, stats)
        .unwrap()
        .volume_condition
        .unwrap();
    assert!(condition.abnormal, "{condition:?}");
    assert!(
        condition.message.contains("went read-only"),
        "{condition:?}"
    );
    let err = rpc::stage(&h.core, h.stage_req(ext4())).await.unwrap_err();
    assert_eq!(
        err.kind(),
        Kind::FailedPrecondition,
        "re-stage of a sick mount"
    );
}
