//! The format decision against the fakes: never a format when anything is in doubt (and a
//! rollback of the login), never a probe of a block volume, growth of an existing filesystem.

use super::*;

#[tokio::test]
async fn never_formats_when_anything_is_in_doubt_and_rolls_back() {
    for (probe, read_ok, content, serial) in [
        (Ok(Probe::PartitionTable("dos".into())), true, "", SERIAL),
        (
            Ok(Probe::Other("LVM2_member (raid)".into())),
            true,
            "",
            SERIAL,
        ),
        (Ok(Probe::Filesystem("xfs".into())), true, "", SERIAL),
        (Err("blkid: I/O error".to_string()), true, "", SERIAL),
        (Ok(Probe::Empty), false, "", SERIAL),
        (Ok(Probe::Empty), true, "snapshot:snap-x", SERIAL),
        (
            Ok(Probe::Empty),
            true,
            "",
            "5a0c1e00-0000-4000-8000-000000000bad",
        ),
    ] {
        let h = harness(probe.clone());
        *h.probe.read_ok.lock().unwrap() = read_ok;
        *h.devs.serial.lock().unwrap() = serial.into();
        let mut req = h.stage_req(ext4());
        req.volume_context
            .insert(CONTENT_SOURCE.into(), content.into());
        let err = rpc::stage(&h.core, req).await.unwrap_err();
        assert_eq!(err.kind(), Kind::FailedPrecondition, "{probe:?}: {err}");
        h.runner.finish(); // no mkfs, no fsck ran
        assert!(h.mount_calls().is_empty(), "{probe:?}");
        assert!(
            h.init.sessions.lock().unwrap().is_empty(),
            "login rolled back for {probe:?}"
        );
        assert!(h.init.records.lock().unwrap().is_empty());
        assert!(
            std::fs::read_dir(h.root.join("state"))
                .unwrap()
                .next()
                .is_none(),
            "stage record removed"
        );
    }
}

#[tokio::test]
async fn block_volume_is_never_probed_formatted_or_mounted_at_staging() {
    let h = harness(Err("the probe must not run".into()));
    let cap = block_cap(Mode::SingleNodeSingleWriter);
    rpc::stage(&h.core, h.stage_req(cap.clone())).await.unwrap();
    assert!(h.mount_calls().is_empty());
    for _ in 0..2 {
        // The second publish repeats the first: idempotent.
        rpc::publish(&h.core, h.publish_req(cap.clone(), "pods/dev", false))
            .await
            .unwrap();
    }
    assert!(
        h.root.join("pods/dev").is_file(),
        "a file to bind the device node onto"
    );
    let second = rpc::publish(&h.core, h.publish_req(cap.clone(), "pods/dev2", false))
        .await
        .unwrap_err();
    assert_eq!(
        second.kind(),
        Kind::FailedPrecondition,
        "single writer: {second}"
    );
    let req = NodeGetVolumeStatsRequest {
        volume_id: VOL.into(),
        volume_path: h.p("pods/dev"),
        staging_target_path: String::new(),
    };
    let stats = rpc::stats(&h.core, req.clone()).unwrap();
    assert_eq!(stats.usage[0].total, 64 << 20);
    assert!(!stats.volume_condition.unwrap().abnormal);
    h.init.sessions.lock().unwrap().clear();
    let sick = rpc::stats(&h.core, req).unwrap().volume_condition.unwrap();
    assert!(
        sick.abnormal && sick.message.contains("no iSCSI session"),
        "{sick:?}"
    );
    assert_eq!(h.mount_calls(), ["bind /dev/sdb /pods/dev rw"]);
}

#[tokio::test]
async fn an_existing_filesystem_is_grown_and_a_failed_grow_leaves_no_mount() {
    let h = harness(Ok(Probe::Filesystem("ext4".into())));
    h.runner
        .expect(Expectation::new(["e2fsck", "-p", "/dev/sdb"]));
    h.runner.expect(
        Expectation::new(["resize2fs", "/dev/sdb"])
            .fails(1, "resize2fs: Permission denied to resize filesystem"),
    );
    let err = rpc::stage(&h.core, h.stage_req(ext4())).await.unwrap_err();
    assert!(err.message().contains("resize2fs"), "{err}");
    assert!(
        h.mounts.table.lock().unwrap().is_empty(),
        "the staging mount is undone so that the retry grows again"
    );
    // The retry mounts and grows.
    h.expect_existing_ext4();
    rpc::stage(&h.core, h.stage_req(ext4())).await.unwrap();
    assert_eq!(h.mounts.table.lock().unwrap().len(), 1);
    h.runner.finish();
}
