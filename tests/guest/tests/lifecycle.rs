//! Guest tier: the CO's whole sequence for ext4, xfs and raw block, with data checksums across
//! unstage and restage, ending with leak accounting.
//!
//! CreateVolume → ControllerPublish → NodeStage → NodePublish → write → NodeUnpublish →
//! NodeUnstage → NodeStage → NodePublish → read back → NodeUnpublish → NodeUnstage →
//! ControllerUnpublish → DeleteVolume → nothing left.

use carve_guest_tests::{
    Driver, DriverOptions, Lab, assert_no_leaks, checksum, guest_test,
    volume::{self, DATA_LEN, MIB, Spec, controller_publish, controller_unpublish, delete_volume},
};
use carvectl::request::{block_capability, mount_capability};
use csi_proto::v1::{NodeGetInfoRequest, VolumeCapability, volume_capability::access_mode::Mode};
use std::{collections::HashMap, path::Path};

async fn lifecycle(
    backend: &'static str,
    name: &str,
    capability: VolumeCapability,
    size: i64,
    thin: bool,
) {
    let lab = Lab::from_env();
    let mut driver = Driver::start(&lab, DriverOptions::default().backend(backend)).await;
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

    let created = volume::create(&driver, &Spec::new(name, size, capability).thin(thin)).await;
    let mut vol = driver.ok("CreateVolume", created);
    assert!(vol.capacity >= size);
    vol.publish = controller_publish(&driver, &vol, &node_id, HashMap::new()).await;
    let (stage, publish) = (vol.stage(), vol.publish());
    let (unpublish, unstage) = (vol.unpublish(), vol.unstage());

    let mut node = driver.node_rpc();
    driver
        .twice("NodeStage", stage.clone(), async |r| {
            node.node_stage_volume(r).await
        })
        .await;
    driver
        .twice("NodePublish", publish.clone(), async |r| {
            node.node_publish_volume(r).await
        })
        .await;

    let written = write(&vol.target, block);

    node.node_unpublish_volume(unpublish.clone())
        .await
        .expect("NodeUnpublish");
    driver.ok(
        "NodeUnstage",
        node.node_unstage_volume(unstage.clone()).await,
    );
    assert!(
        carve_guest_tests::leaks::leaks(&lab, None)
            .iter()
            .all(|l| !l.starts_with("iSCSI session")),
        "logged out"
    );

    // A plugin restart between unstage and restage: the node keeps nothing in memory.
    driver.restart_node().await;
    let mut node = driver.node_rpc();
    driver.ok("re-NodeStage", node.node_stage_volume(stage.clone()).await);
    node.node_publish_volume(publish.clone())
        .await
        .expect("re-NodePublish");
    assert_eq!(
        read(&vol.target, block),
        written,
        "data survives unstage and restage"
    );

    driver
        .twice("NodeUnpublish", unpublish, async |r| {
            node.node_unpublish_volume(r).await
        })
        .await;
    driver
        .twice("NodeUnstage", unstage, async |r| {
            node.node_unstage_volume(r).await
        })
        .await;

    // Twice each: both are idempotent.
    controller_unpublish(&driver, &vol, &node_id).await;
    controller_unpublish(&driver, &vol, &node_id).await;
    delete_volume(&driver, &vol.id).await;
    delete_volume(&driver, &vol.id).await;

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

guest_test!(ext4_thin_volume_round_trip, async {
    let cap = mount_capability(Mode::SingleNodeWriter, "ext4", &[], "");
    lifecycle("configfs", "pvc-ext4;$(reboot)", cap, 64 * MIB, true).await;
});

guest_test!(xfs_thick_volume_round_trip, async {
    let cap = mount_capability(Mode::SingleNodeWriter, "xfs", &["noatime"], "");
    lifecycle("configfs", "pvc-xfs-../../etc", cap, 320 * MIB, false).await;
});

guest_test!(raw_block_volume_round_trip, async {
    let cap = block_capability(Mode::SingleNodeWriter);
    lifecycle("configfs", "pvc-block-名前", cap, 32 * MIB, true).await;
});

guest_test!(ext4_round_trip_through_targetcli, async {
    let cap = mount_capability(Mode::SingleNodeWriter, "ext4", &[], "");
    lifecycle("targetcli", "pvc-targetcli", cap, 64 * MIB, true).await;
});
