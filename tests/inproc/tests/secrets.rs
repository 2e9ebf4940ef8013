//! In-process tier: a sentinel secret sent in every secret-bearing RPC never reaches a log line
//! (at TRACE level, tonic and h2 included) or an error message.

use carve_inproc_tests::Served;
use csi_common::command::ScriptedRunner;
use csi_proto::v1::{
    ControllerPublishVolumeRequest, CreateVolumeRequest, DeleteVolumeRequest,
    NodePublishVolumeRequest, NodeStageVolumeRequest,
};
use std::{collections::HashMap, sync::Arc};

const SENTINEL: &str = "SENTINEL-s3cr3t-9f8e7d";

fn secrets() -> HashMap<String, String> {
    HashMap::from([
        ("chapUsername".to_string(), "user".to_string()),
        ("chapPassword".to_string(), SENTINEL.to_string()),
        ("anything".to_string(), SENTINEL.to_string()),
    ])
}

#[tokio::test(flavor = "current_thread")]
async fn a_sentinel_secret_never_reaches_a_log_line_or_an_error() {
    let (captured, _guard) = csi_common::testing::logs::CapturedLogs::start();

    let dir = tempfile::tempdir().unwrap();
    let initiator = dir.path().join("initiatorname.iscsi");
    std::fs::write(&initiator, "InitiatorName=iqn.2024-01.dev.carve:node1\n").unwrap();
    let controller = Served::controller(
        &[
            "--volume-group",
            "vg0",
            "--portal",
            "192.0.2.1:3260",
            "--configfs-root",
            "/nonexistent",
        ],
        Arc::new(ScriptedRunner::new()),
    )
    .await;
    let node = Served::node(
        &[
            "--initiator-name-file",
            initiator.to_str().unwrap(),
            "--state-dir",
            dir.path().to_str().unwrap(),
            // The staging path below lies under it, as kubelet's do: the stage gets past the
            // path checks.
            "--kubelet-dir",
            dir.path().to_str().unwrap(),
        ],
        Arc::new(ScriptedRunner::new()),
    )
    .await;

    let mut messages = Vec::new();
    let mut c = controller.client.controller.clone();
    let mut n = node.client.node.clone();
    let volume_id = "csi-pvc-1-0123456789abcdef01234567".to_string();
    let results = [
        c.create_volume(CreateVolumeRequest {
            name: "pvc-1".into(),
            secrets: secrets(),
            ..Default::default()
        })
        .await
        .err(),
        c.delete_volume(DeleteVolumeRequest {
            volume_id: volume_id.clone(),
            secrets: secrets(),
        })
        .await
        .err(),
        c.controller_publish_volume(ControllerPublishVolumeRequest {
            volume_id: volume_id.clone(),
            node_id: "iqn.2024-01.dev.carve:node1".into(),
            secrets: secrets(),
            ..Default::default()
        })
        .await
        .err(),
        n.node_stage_volume(NodeStageVolumeRequest {
            volume_id: volume_id.clone(),
            staging_target_path: dir.path().join("stage").display().to_string(),
            secrets: secrets(),
            ..Default::default()
        })
        .await
        .err(),
        n.node_publish_volume(NodePublishVolumeRequest {
            volume_id,
            target_path: dir.path().join("target").display().to_string(),
            secrets: secrets(),
            ..Default::default()
        })
        .await
        .err(),
    ];
    for status in results.into_iter().flatten() {
        messages.push(status.message().to_string());
    }
    controller.shutdown().await;
    node.shutdown().await;

    let logs = captured.text();
    assert!(
        logs.contains("rpc"),
        "the RPC spans were captured, so the check below means something"
    );
    assert!(
        logs.contains("CreateVolume") && logs.contains("NodeStageVolume"),
        "{logs}"
    );
    assert!(
        !logs.contains(SENTINEL),
        "a secret reached the logs:\n{logs}"
    );
    for message in messages {
        assert!(
            !message.contains(SENTINEL),
            "a secret reached an error message: {message}"
        );
    }
}
