//! Guest tier: the CO's whole sequence for ext4, xfs and raw block, with data checksums across
//! unstage and restage, ending with leak accounting.
//!
//! CreateVolume → ControllerPublish → NodeStage → NodePublish → write → NodeUnpublish →
//! NodeUnstage → NodeStage → NodePublish → read back → NodeUnpublish → NodeUnstage →
//! ControllerUnpublish → DeleteVolume → nothing left.

use carve_guest_tests::{
    Driver, DriverOptions, Lab, assert_no_leaks, checksum,
    volume::{DATA_LEN, MIB},
};
use carvectl::request::{block_capability, capacity_range, mount_capability};
use csi_proto::v1::{
    ControllerPublishVolumeRequest, ControllerUnpublishVolumeRequest, CreateVolumeRequest,
    DeleteVolumeRequest, NodeGetInfoRequest, NodePublishVolumeRequest, NodeStageVolumeRequest,
    NodeUnpublishVolumeRequest, NodeUnstageVolumeRequest, VolumeCapability,
    volume_capability::access_mode::Mode,
};
use std::{collections::HashMap, path::Path};

async fn lifecycle(
    backend: &'static str,
    name: &str,
    capability: VolumeCapability,
    size: i64,
    thin: bool,
) {
    let lab = Lab::from_env();
    let mut driver = Driver::start(
        &lab,
        DriverOptions {
            lio_backend: backend,
            ..Default::default()
        },
    )
    .await;
    let block = matches!(
        capability.access_type,
        Some(csi_proto::v1::volume_capability::AccessType::Block(_))
    );

    let node_id = driver
        .node_rpc()
        .node_get_info(NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .node_id;
    assert_eq!(node_id, lab.initiator, "node id is the initiator IQN");

    let created = driver
        .controller_rpc()
        .create_volume(CreateVolumeRequest {
            name: name.to_string(),
            capacity_range: capacity_range(size, 0),
            volume_capabilities: vec![capability.clone()],
            parameters: HashMap::from([("thin".to_string(), thin.to_string())]),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("CreateVolume: {s:?}\n{}", driver.logs()))
        .into_inner()
        .volume
        .expect("volume");
    assert!(created.capacity_bytes >= size);
    let volume_id = created.volume_id.clone();

    let published = driver
        .controller_rpc()
        .controller_publish_volume(ControllerPublishVolumeRequest {
            volume_id: volume_id.clone(),
            node_id: node_id.clone(),
            volume_capability: Some(capability.clone()),
            readonly: false,
            volume_context: created.volume_context.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("ControllerPublish: {s:?}\n{}", driver.logs()))
        .into_inner();

    let staging = driver.staging_path(&volume_id);
    let target = driver.target_path(&volume_id);
    let stage = NodeStageVolumeRequest {
        volume_id: volume_id.clone(),
        publish_context: published.publish_context.clone(),
        staging_target_path: staging.display().to_string(),
        volume_capability: Some(capability.clone()),
        volume_context: created.volume_context.clone(),
        ..Default::default()
    };
    let publish = NodePublishVolumeRequest {
        volume_id: volume_id.clone(),
        publish_context: published.publish_context.clone(),
        staging_target_path: staging.display().to_string(),
        target_path: target.display().to_string(),
        volume_capability: Some(capability.clone()),
        readonly: false,
        volume_context: created.volume_context.clone(),
        ..Default::default()
    };
    let unpublish = NodeUnpublishVolumeRequest {
        volume_id: volume_id.clone(),
        target_path: target.display().to_string(),
    };
    let unstage = NodeUnstageVolumeRequest {
        volume_id: volume_id.clone(),
        staging_target_path: staging.display().to_string(),
    };

    let mut node = driver.node_rpc();
    node.node_stage_volume(stage.clone())
        .await
        .unwrap_or_else(|s| panic!("NodeStage: {s:?}\n{}", driver.logs()));
    node.node_stage_volume(stage.clone())
        .await
        .expect("NodeStage is idempotent");
    node.node_publish_volume(publish.clone())
        .await
        .unwrap_or_else(|s| panic!("NodePublish: {s:?}\n{}", driver.logs()));
    node.node_publish_volume(publish.clone())
        .await
        .expect("NodePublish is idempotent");

    let written = write(&target, block);

    node.node_unpublish_volume(unpublish.clone())
        .await
        .expect("NodeUnpublish");
    node.node_unstage_volume(unstage.clone())
        .await
        .unwrap_or_else(|s| panic!("NodeUnstage: {s:?}\n{}", driver.logs()));
    assert!(
        carve_guest_tests::leaks::leaks(&lab, None)
            .iter()
            .all(|l| !l.starts_with("iSCSI session")),
        "logged out"
    );

    // A plugin restart between unstage and restage: the node keeps nothing in memory.
    driver.restart_node().await;
    let mut node = driver.node_rpc();
    node.node_stage_volume(stage.clone())
        .await
        .unwrap_or_else(|s| panic!("re-NodeStage: {s:?}\n{}", driver.logs()));
    node.node_publish_volume(publish.clone())
        .await
        .expect("re-NodePublish");
    assert_eq!(
        read(&target, block),
        written,
        "data survives unstage and restage"
    );

    node.node_unpublish_volume(unpublish.clone())
        .await
        .expect("NodeUnpublish");
    node.node_unpublish_volume(unpublish)
        .await
        .expect("NodeUnpublish is idempotent");
    node.node_unstage_volume(unstage.clone())
        .await
        .expect("NodeUnstage");
    node.node_unstage_volume(unstage)
        .await
        .expect("NodeUnstage is idempotent");

    let mut controller = driver.controller_rpc();
    let unpublish = ControllerUnpublishVolumeRequest {
        volume_id: volume_id.clone(),
        node_id: node_id.clone(),
        ..Default::default()
    };
    controller
        .controller_unpublish_volume(unpublish.clone())
        .await
        .expect("ControllerUnpublish");
    controller
        .controller_unpublish_volume(unpublish)
        .await
        .expect("ControllerUnpublish is idempotent");
    let delete = DeleteVolumeRequest {
        volume_id: volume_id.clone(),
        ..Default::default()
    };
    controller
        .delete_volume(delete.clone())
        .await
        .unwrap_or_else(|s| panic!("DeleteVolume: {s:?}\n{}", driver.logs()));
    controller
        .delete_volume(delete)
        .await
        .expect("DeleteVolume is idempotent");

    assert_no_leaks(&lab, Some(driver.dir.path()));
}

fn write(target: &Path, block: bool) -> String {
    if block {
        checksum::write_device(target, DATA_LEN, 7)
    } else {
        checksum::write_file(&target.join("data.bin"), DATA_LEN, 7)
    }
}

fn read(target: &Path, block: bool) -> String {
    if block {
        checksum::device_sha256(target, DATA_LEN)
    } else {
        checksum::file_sha256(&target.join("data.bin"))
    }
}

#[tokio::test]
#[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
async fn ext4_thin_volume_round_trip() {
    let cap = mount_capability(Mode::SingleNodeWriter, "ext4", &[], "");
    lifecycle("configfs", "pvc-ext4;$(reboot)", cap, 64 * MIB, true).await;
}

#[tokio::test]
#[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
async fn xfs_thick_volume_round_trip() {
    let cap = mount_capability(Mode::SingleNodeWriter, "xfs", &["noatime"], "");
    lifecycle("configfs", "pvc-xfs-../../etc", cap, 320 * MIB, false).await;
}

#[tokio::test]
#[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
async fn raw_block_volume_round_trip() {
    let cap = block_capability(Mode::SingleNodeWriter);
    lifecycle("configfs", "pvc-block-名前", cap, 32 * MIB, true).await;
}

#[tokio::test]
#[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
async fn ext4_round_trip_through_targetcli() {
    let cap = mount_capability(Mode::SingleNodeWriter, "ext4", &[], "");
    lifecycle("targetcli", "pvc-targetcli", cap, 64 * MIB, true).await;
}
