//! In-process tier of Carve's conformance suite: the stateless cases
//! (`carve_guest_tests::conformance::stateless`: every Identity, Controller and Node RPC given an
//! id Carve never issued or a missing field, the capabilities and NodeGetInfo) against both
//! plugins' real routes on unix sockets, with a command runner that has no script: an answer
//! that needed a tool (LVM, iscsiadm, mount helpers) is a failure, and so is any tool run.

use carve_guest_tests::conformance::{Table, stateless, stateless::Env};
use carve_inproc_tests::Served;
use csi_common::command::ScriptedRunner;
use std::sync::Arc;

const INITIATOR: &str = "iqn.2024-01.dev.carve:node1";

#[tokio::test]
async fn stateless_cases_answer_as_the_spec_wants_without_running_a_tool() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let initiator = root.join("initiatorname.iscsi");
    std::fs::write(&initiator, format!("InitiatorName={INITIATOR}\n")).unwrap();
    let staging = root.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::create_dir_all(root.join("pods/p1")).unwrap();
    let target = root.join("pods/p1/volume");
    let controller_runner = Arc::new(ScriptedRunner::new());
    let node_runner = Arc::new(ScriptedRunner::new());
    let controller = Served::controller(
        &[
            "--volume-group",
            "vg0",
            "--thin-pool",
            "pool",
            "--portal",
            "192.0.2.1:3260",
            "--configfs-root",
            root.join("configfs").to_str().unwrap(),
        ],
        controller_runner.clone(),
    )
    .await;
    let node = Served::node(
        &[
            "--initiator-name-file",
            initiator.to_str().unwrap(),
            "--state-dir",
            root.join("state").to_str().unwrap(),
            "--kubelet-dir",
            root.to_str().unwrap(),
        ],
        node_runner.clone(),
    )
    .await;
    let env = Env {
        node_id: INITIATOR,
        max_volumes: i64::from(csi_common::contract::DEFAULT_MAX_VOLUMES_PER_NODE),
        staging: &staging,
        target: &target,
        probe: false,
    };
    let mut t = Table::default();
    stateless(&mut t, &controller.client, &node.client, &env).await;
    t.check(
        "no_tool_ran__controller",
        controller_runner.ran().is_empty(),
        format!("{:?}", controller_runner.ran()),
    );
    t.check(
        "no_tool_ran__node",
        node_runner.ran().is_empty(),
        format!("{:?}", node_runner.ran()),
    );
    t.check(
        "node_publish_volume__target_path_not_created",
        !target.exists(),
        "an unknown volume creates nothing",
    );
    t.finish("in-process");
    controller.shutdown().await;
    node.shutdown().await;
}
