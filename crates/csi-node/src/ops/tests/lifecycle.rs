//! A volume's life against the fakes: staged (after a rescan when its disk is late),
//! formatted, mounted, published and torn down; restaged elsewhere or incompatibly.

use super::*;

#[tokio::test]
async fn a_session_without_its_disk_is_rescanned_once_before_stage_gives_up() {
    let h = harness(Ok(Probe::Empty));
    let cap = block_cap(Mode::SingleNodeWriter);
    *h.devs.lun_hidden.lock().unwrap() = true;
    rpc::stage(&h.core, h.stage_req(cap.clone()))
        .await
        .expect("the rescan finds the disk");
    let calls = h.init.calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("rescan")).count(),
        1,
        "{calls:?}"
    );
    assert_eq!(*h.devs.calls.lock().unwrap(), ["wait timed out"]);
    rpc::unstage(&h.core, h.unstage_req()).await.unwrap();

    // The LUN is really gone: one rescan, then a loud failure and the login rolled back.
    let h = harness(Ok(Probe::Empty));
    *h.devs.lun_hidden.lock().unwrap() = true;
    *h.init.rescan_blind.lock().unwrap() = true;
    let err = rpc::stage(&h.core, h.stage_req(cap)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::DeadlineExceeded, "{err}");
    assert!(
        err.message()
            .contains("even after a rescan of session 1 (host1)"),
        "{err}"
    );
    let calls = h.init.calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("rescan")).count(),
        1,
        "{calls:?}"
    );
    assert!(
        h.init.sessions.lock().unwrap().is_empty(),
        "logged out again: {calls:?}"
    );
    assert!(h.init.records.lock().unwrap().is_empty(), "{calls:?}");
    assert_eq!(
        *h.devs.calls.lock().unwrap(),
        ["wait timed out", "wait timed out"]
    );
}

#[tokio::test]
async fn new_volume_is_formatted_mounted_published_and_torn_down() {
    let h = harness(Ok(Probe::Empty));
    h.expect_mkfs_ext4("/dev/sdb");
    rpc::stage(&h.core, h.stage_req(ext4())).await.unwrap();
    rpc::stage(&h.core, h.stage_req(ext4()))
        .await
        .expect("idempotent: no second mkfs");
    h.runner.finish();
    rpc::publish(&h.core, h.publish_req(ext4(), "pods/a", false))
        .await
        .unwrap();
    rpc::publish(&h.core, h.publish_req(ext4(), "pods/a", false))
        .await
        .expect("idempotent");
    let err = rpc::publish(&h.core, h.publish_req(ext4(), "pods/a", true))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::AlreadyExists);
    rpc::publish(&h.core, h.publish_req(ext4(), "pods/b", true))
        .await
        .unwrap();
    let busy = rpc::unstage(&h.core, h.unstage_req()).await.unwrap_err();
    assert_eq!(
        busy.kind(),
        Kind::FailedPrecondition,
        "still published: {busy}"
    );
    for t in ["pods/a", "pods/b"] {
        let req = NodeUnpublishVolumeRequest {
            volume_id: VOL.into(),
            target_path: h.p(t),
        };
        rpc::unpublish(&h.core, req.clone()).await.unwrap();
        rpc::unpublish(&h.core, req).await.expect("gone is OK");
        assert!(!h.root.join(t).exists());
    }
    rpc::unstage(&h.core, h.unstage_req()).await.unwrap();
    rpc::unstage(&h.core, h.unstage_req())
        .await
        .expect("idempotent");
    assert_eq!(
        h.mount_calls(),
        [
            "mount_fs /dev/sdb /stage ext4 ",
            "bind /stage /pods/a rw",
            "bind /stage /pods/b ro",
            "unmount /pods/a",
            "unmount /pods/b",
            "unmount /stage",
        ]
    );
    assert_eq!(*h.devs.calls.lock().unwrap(), ["flush sdb", "delete sdb"]);
    let calls = h.init.calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("login")).count(),
        1,
        "{calls:?}"
    );
    assert!(calls.ends_with(&[
        format!("logout iqn.2024-01.dev.carve:{VOL}"),
        format!("delete_record iqn.2024-01.dev.carve:{VOL}")
    ]));
    assert!(
        h.init.sessions.lock().unwrap().is_empty() && h.init.records.lock().unwrap().is_empty()
    );
    assert!(h.mounts.table.lock().unwrap().is_empty());
    assert_eq!(h.record(), None);
}

#[tokio::test]
async fn restage_elsewhere_or_incompatibly_is_already_exists() {
    let h = harness(Ok(Probe::Filesystem("ext4".into())));
    h.expect_existing_ext4();
    rpc::stage(&h.core, h.stage_req(ext4())).await.unwrap();
    h.runner.finish();
    let mut other = h.stage_req(ext4());
    other.staging_target_path = h.p("pods");
    assert_eq!(
        rpc::stage(&h.core, other).await.unwrap_err().kind(),
        Kind::AlreadyExists
    );
    let xfs = h.stage_req(mount_cap("xfs", Mode::SingleNodeWriter));
    assert_eq!(
        rpc::stage(&h.core, xfs).await.unwrap_err().kind(),
        Kind::AlreadyExists
    );
    let block = h.stage_req(block_cap(Mode::SingleNodeWriter));
    assert_eq!(
        rpc::stage(&h.core, block).await.unwrap_err().kind(),
        Kind::AlreadyExists
    );
}
