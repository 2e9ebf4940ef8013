//! Bad input against the fakes: CHAP and login failures, and every missing or malformed
//! argument with its code.

use super::*;

#[tokio::test]
async fn chap_and_login_failures() {
    let h = harness(Ok(Probe::Empty));
    *h.init.login_error.lock().unwrap() = Some(csi_common::Error::failed_precondition(
        "authorization failure",
    ));
    let mut req = h.stage_req(block_cap(Mode::SingleNodeWriter));
    req.secrets = HashMap::from([
        (CHAP_USERNAME.into(), "u".into()),
        (CHAP_PASSWORD.into(), "a-long-secret-1".into()),
    ]);
    let err = rpc::stage(&h.core, req.clone()).await.unwrap_err();
    assert_eq!(err.kind(), Kind::FailedPrecondition);
    assert!(!err.message().contains("a-long-secret-1"));
    assert!(
        h.init.records.lock().unwrap().is_empty(),
        "node record holding CHAP deleted"
    );
    rpc::stage(&h.core, req).await.unwrap();
    assert_eq!(
        *h.init.records.lock().unwrap(),
        [(format!("iqn.2024-01.dev.carve:{VOL}"), true)]
    );
}

#[tokio::test]
async fn argument_errors() {
    let h = harness(Ok(Probe::Empty));
    let mut bad = h.stage_req(ext4());
    bad.volume_id = "../etc".into();
    assert_eq!(
        rpc::stage(&h.core, bad).await.unwrap_err().kind(),
        Kind::NotFound,
        "an id Carve never issued names no volume"
    );
    let mut nocap = h.stage_req(ext4());
    nocap.volume_capability = None;
    assert_eq!(
        rpc::stage(&h.core, nocap).await.unwrap_err().kind(),
        Kind::InvalidArgument
    );
    let mut noctx = h.stage_req(ext4());
    noctx.publish_context.clear();
    assert_eq!(
        rpc::stage(&h.core, noctx).await.unwrap_err().kind(),
        Kind::InvalidArgument
    );
    let unstaged = rpc::publish(&h.core, h.publish_req(ext4(), "pods/a", false))
        .await
        .unwrap_err();
    assert_eq!(unstaged.kind(), Kind::NotFound);
    let mut nostage = h.publish_req(ext4(), "pods/a", false);
    nostage.staging_target_path.clear();
    assert_eq!(
        rpc::publish(&h.core, nostage).await.unwrap_err().kind(),
        Kind::FailedPrecondition
    );
    let hostile = h.publish_req(ext4(), "pods/../../etc", false);
    assert_eq!(
        rpc::publish(&h.core, hostile).await.unwrap_err().kind(),
        Kind::InvalidArgument
    );
    std::os::unix::fs::symlink("/etc", h.root.join("pods/link")).unwrap();
    let link = NodeUnpublishVolumeRequest {
        volume_id: VOL.into(),
        target_path: h.p("pods/link"),
    };
    assert_eq!(
        rpc::unpublish(&h.core, link).await.unwrap_err().kind(),
        Kind::InvalidArgument
    );
    let stats = NodeGetVolumeStatsRequest {
        volume_id: VOL.into(),
        volume_path: h.p("nowhere"),
        staging_target_path: String::new(),
    };
    assert_eq!(
        rpc::stats(&h.core, stats).unwrap_err().kind(),
        Kind::NotFound
    );
    rpc::unstage(&h.core, h.unstage_req())
        .await
        .expect("never staged: OK");
    let info = NodeGetInfoResponse::from(crate::ops::info::info(&h.core));
    assert_eq!(info.node_id, "iqn.2024-01.dev.carve:node1");
    assert_eq!(info.max_volumes_per_node, 10);
    assert!(info.accessible_topology.is_none());
    assert_eq!(crate::service::CAPABILITIES.len(), 5);
}
