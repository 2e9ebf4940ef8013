//! In-process tier: both plugins' Identity services over unix sockets, through carvectl's client.

use carve_guest_tests::identity::{node_info, plugin_info, ready, services};
use carve_inproc_tests::{Served, controller_args, node_args, node_routes};
use csi_common::command::{Expectation, ScriptedRunner};
use csi_proto::v1::{ProbeRequest, plugin_capability::service::Type as ServiceType};
use std::sync::Arc;

#[tokio::test]
async fn controller_identity_reports_not_ready_without_its_volume_group() {
    let fake = Arc::new(ScriptedRunner::new());
    fake.expect(
        Expectation::new(["vgs", "--noheadings", "-o", "vg_name", "--", "vg0"])
            .fails(5, "  Volume group \"vg0\" not found\n"),
    );
    // The prefix makes the program check look for `env` only (the host has no LVM tools), so
    // the probe goes on to ask the (scripted) `vgs`.
    let flags = [
        "--volume-group",
        "vg0",
        "--portal",
        "192.0.2.1:3260",
        "--command-prefix",
        "env",
    ];
    let served = Served::controller(&flags, fake.clone()).await;

    let info = plugin_info(&served.client).await;
    assert_eq!(info.name, "lvm-iscsi.csi.carve.dev");
    assert_eq!(info.vendor_version, env!("CARGO_PKG_VERSION"));

    let services = services(&served.client).await;
    assert!(services.contains(&(ServiceType::ControllerService as i32)));

    let probe = served
        .client
        .identity
        .clone()
        .probe(ProbeRequest {})
        .await
        .expect("not ready is an answer, not an error");
    assert_eq!(probe.into_inner().ready, Some(false));
    fake.finish();

    let socket = served.shutdown().await;
    assert!(!socket.exists(), "socket removed on shutdown");
}

#[tokio::test]
async fn node_identity_is_ready_when_iscsid_answers() {
    let fake = Arc::new(ScriptedRunner::new());
    fake.expect(Expectation::new(["iscsiadm", "--version"]).stdout("iscsiadm version 2.1.8\n"));
    fake.expect(
        Expectation::new(["iscsiadm", "-m", "session"])
            .fails(21, "iscsiadm: No active sessions.\n"),
    );
    // --multipath auto (the default): multipathd must answer too.
    fake.expect(Expectation::new(["multipathd", "show", "daemon"]).stdout("pid 229 idle\n"));
    let dir = tempfile::tempdir().unwrap();
    let initiator = dir.path().join("initiatorname.iscsi");
    std::fs::write(&initiator, "InitiatorName=iqn.2024-01.dev.carve:node1\n").unwrap();
    let flags = [
        "--initiator-name-file",
        initiator.to_str().unwrap(),
        "--state-dir",
        dir.path().to_str().unwrap(),
    ];
    let served = Served::node(&flags, fake.clone()).await;

    let info = plugin_info(&served.client).await;
    assert_eq!(info.name, "lvm-iscsi.csi.carve.dev");
    assert!(
        !services(&served.client)
            .await
            .contains(&(ServiceType::ControllerService as i32)),
        "the node plugin does not claim the controller service"
    );
    assert_eq!(ready(&served.client).await, Some(true));
    fake.finish();
    served.shutdown().await;
}

#[tokio::test]
async fn custom_driver_name_is_reported_and_bad_ones_are_refused() {
    let flags = ["--driver-name", "block.example.org"];
    let served = Served::controller(&flags, Arc::new(ScriptedRunner::new())).await;
    assert_eq!(plugin_info(&served.client).await.name, "block.example.org");
    served.shutdown().await;

    let refused = <csi_controller::config::ControllerArgs as clap::Parser>::try_parse_from([
        "csi-controller",
        "--driver-name",
        "bad name;rm",
    ]);
    assert!(refused.is_err());
}

#[tokio::test]
async fn a_topology_comes_with_volume_accessibility_constraints_on_both_plugins() {
    let constraints = ServiceType::VolumeAccessibilityConstraints as i32;
    let plain = Served::controller(&[], Arc::new(ScriptedRunner::new())).await;
    assert!(!services(&plain.client).await.contains(&constraints));
    plain.shutdown().await;
    let flags = ["--accessible-topology", "topology.carve.dev/zone=a"];
    let zoned = Served::controller(&flags, Arc::new(ScriptedRunner::new())).await;
    assert!(services(&zoned.client).await.contains(&constraints));
    zoned.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let node = |topology: &[&str]| {
        let mut flags = vec![
            "--node-id",
            "iqn.2024-01.dev.carve:node1",
            "--state-dir",
            state,
        ];
        flags.extend_from_slice(topology);
        node_args(&flags)
    };
    let plain = Served::start(node_routes(&node(&[]), Arc::new(ScriptedRunner::new()))).await;
    assert!(!services(&plain.client).await.contains(&constraints));
    assert!(node_info(&plain.client).await.accessible_topology.is_none());
    plain.shutdown().await;
    let args = node(&[
        "--topology",
        "topology.carve.dev/zone=a,topology.carve.dev/rack=r1",
    ]);
    let zoned = Served::start(node_routes(&args, Arc::new(ScriptedRunner::new()))).await;
    assert!(services(&zoned.client).await.contains(&constraints));
    let info = node_info(&zoned.client).await;
    let segments = info.accessible_topology.unwrap().segments;
    assert_eq!(segments.len(), 2);
    assert_eq!(segments["topology.carve.dev/zone"], "a");
    zoned.shutdown().await;
}

#[tokio::test]
async fn a_topology_against_the_spec_grammar_is_refused_at_start() {
    for bad in ["zone", "zone=a b", "Carve.dev/zone=a"] {
        let refused = <csi_node::config::NodeArgs as clap::Parser>::try_parse_from([
            "csi-node",
            "--topology",
            bad,
        ]);
        assert!(refused.is_err(), "node accepted {bad:?}");
        let refused = <csi_controller::config::ControllerArgs as clap::Parser>::try_parse_from([
            "csi-controller",
            "--accessible-topology",
            bad,
        ]);
        assert!(refused.is_err(), "controller accepted {bad:?}");
    }
    // Parsed one by one, but two spellings of one key or two prefixes are refused at build.
    let dir = tempfile::tempdir().unwrap();
    for pair in [["zone=a", "ZONE=b"], ["a.dev/zone=a", "b.dev/rack=1"]] {
        let args = node_args(&[
            "--node-id",
            "iqn.2024-01.dev.carve:node1",
            "--state-dir",
            dir.path().to_str().unwrap(),
            "--topology",
            pair[0],
            "--topology",
            pair[1],
        ]);
        let built = csi_node::server::routes(&args, Arc::new(ScriptedRunner::new()));
        assert!(built.is_err(), "node accepted {pair:?}");
    }
    let args = controller_args(&[
        "--accessible-topology",
        "a.dev/zone=a",
        "--accessible-topology",
        "b.dev/zone=b",
    ]);
    assert!(csi_controller::server::build(&args, Arc::new(ScriptedRunner::new())).is_err());
}

#[tokio::test]
async fn a_node_reads_its_own_segments_from_its_topology_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("topology");
    std::fs::write(&file, "# rack 7\ntopology.carve.dev/zone=b\n").unwrap();
    let flags = |file: &str| {
        node_args(&[
            "--node-id",
            "iqn.2024-01.dev.carve:node1",
            "--state-dir",
            dir.path().to_str().unwrap(),
            "--topology",
            "topology.carve.dev/rack=r7",
            "--topology-file",
            file,
        ])
    };
    let served = Served::start(node_routes(
        &flags(file.to_str().unwrap()),
        Arc::new(ScriptedRunner::new()),
    ))
    .await;
    let info = node_info(&served.client).await;
    let segments = info.accessible_topology.unwrap().segments;
    assert_eq!(segments["topology.carve.dev/zone"], "b");
    assert_eq!(segments["topology.carve.dev/rack"], "r7");
    served.shutdown().await;
    let missing = dir.path().join("absent");
    let built = csi_node::server::routes(
        &flags(missing.to_str().unwrap()),
        Arc::new(ScriptedRunner::new()),
    );
    let Err(err) = built else {
        panic!("a missing topology file stops the plugin")
    };
    assert!(err.to_string().contains("absent"), "{err}");
}
