//! In-process tier: both plugins' Identity services over unix sockets, through carvectl's client.

use carve_inproc_tests::{Served, controller_args, controller_routes, node_args, node_routes};
use csi_common::command::{Expectation, ScriptedRunner};
use csi_proto::v1::{
    GetPluginCapabilitiesRequest, GetPluginInfoRequest, ProbeRequest, plugin_capability::Type,
    plugin_capability::service::Type as ServiceType,
};
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
    let args = controller_args(&[
        "--volume-group",
        "vg0",
        "--portal",
        "192.0.2.1:3260",
        "--command-prefix",
        "env",
    ]);
    let served = Served::start(controller_routes(&args, fake.clone())).await;
    let mut identity = served.client.identity.clone();

    let info = identity
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "lvm-iscsi.csi.carve.dev");
    assert_eq!(info.vendor_version, env!("CARGO_PKG_VERSION"));

    let caps = identity
        .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    let services: Vec<i32> = caps
        .capabilities
        .iter()
        .filter_map(|c| match &c.r#type {
            Some(Type::Service(s)) => Some(s.r#type),
            _ => None,
        })
        .collect();
    assert!(services.contains(&(ServiceType::ControllerService as i32)));

    let probe = identity
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
    let args = node_args(&[
        "--initiator-name-file",
        initiator.to_str().unwrap(),
        "--state-dir",
        dir.path().to_str().unwrap(),
    ]);
    let served = Served::start(node_routes(&args, fake.clone())).await;
    let mut identity = served.client.identity.clone();

    let info = identity
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "lvm-iscsi.csi.carve.dev");
    let caps = identity
        .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        caps.capabilities.iter().all(|c| !matches!(&c.r#type, Some(Type::Service(s)) if s.r#type == ServiceType::ControllerService as i32)),
        "the node plugin does not claim the controller service"
    );
    let probe = identity.probe(ProbeRequest {}).await.unwrap().into_inner();
    assert_eq!(probe.ready, Some(true));
    fake.finish();
    served.shutdown().await;
}

#[tokio::test]
async fn custom_driver_name_is_reported_and_bad_ones_are_refused() {
    let args = controller_args(&["--driver-name", "block.example.org"]);
    let served = Served::start(controller_routes(&args, Arc::new(ScriptedRunner::new()))).await;
    let info = served
        .client
        .identity
        .clone()
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "block.example.org");
    served.shutdown().await;

    let refused = <csi_controller::config::ControllerArgs as clap::Parser>::try_parse_from([
        "csi-controller",
        "--driver-name",
        "bad name;rm",
    ]);
    assert!(refused.is_err());
}

/// The service capabilities a plugin advertises.
async fn services(served: &Served) -> Vec<i32> {
    served
        .client
        .identity
        .clone()
        .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .capabilities
        .iter()
        .filter_map(|c| match &c.r#type {
            Some(Type::Service(s)) => Some(s.r#type),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_topology_comes_with_volume_accessibility_constraints_on_both_plugins() {
    let constraints = ServiceType::VolumeAccessibilityConstraints as i32;
    let plain = Served::start(controller_routes(
        &controller_args(&[]),
        Arc::new(ScriptedRunner::new()),
    ))
    .await;
    assert!(!services(&plain).await.contains(&constraints));
    plain.shutdown().await;
    let args = controller_args(&["--accessible-topology", "topology.carve.dev/zone=a"]);
    let zoned = Served::start(controller_routes(&args, Arc::new(ScriptedRunner::new()))).await;
    assert!(services(&zoned).await.contains(&constraints));
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
    assert!(!services(&plain).await.contains(&constraints));
    let info = plain
        .client
        .node
        .clone()
        .node_get_info(csi_proto::v1::NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(info.accessible_topology.is_none());
    plain.shutdown().await;
    let args = node(&[
        "--topology",
        "topology.carve.dev/zone=a,topology.carve.dev/rack=r1",
    ]);
    let zoned = Served::start(node_routes(&args, Arc::new(ScriptedRunner::new()))).await;
    assert!(services(&zoned).await.contains(&constraints));
    let info = zoned
        .client
        .node
        .clone()
        .node_get_info(csi_proto::v1::NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
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
    let info = served
        .client
        .node
        .clone()
        .node_get_info(csi_proto::v1::NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
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
