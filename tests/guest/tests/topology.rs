//! Guest tier, topology (docs/topology.md): a storage host reachable from zone a only, a node
//! in zone a. Both plugins advertise VOLUME_ACCESSIBILITY_CONSTRAINTS; CreateVolume refuses a
//! requisite the host does not serve without carving an LV, answers the host's topology on a
//! volume it creates (and in ListVolumes); GetCapacity offers space only to zone a; ending with
//! leak accounting.

use carve_guest_tests::{
    Driver, DriverOptions, Lab, assert_no_leaks, guest_test,
    identity::{node_info, services},
    run,
    volume::{MIB, list_entry},
};
use carvectl::{
    Client,
    request::{capacity_range, mount_capability},
};
use csi_proto::v1::{
    CreateVolumeRequest, DeleteVolumeRequest, GetCapacityRequest, Topology, TopologyRequirement,
    plugin_capability, volume_capability::access_mode::Mode,
};
use std::collections::HashMap;
use tonic::Code;

const KEY: &str = "topology.carve.dev/zone";

fn zone(z: &str) -> Topology {
    Topology {
        segments: HashMap::from([(KEY.to_string(), z.to_string())]),
    }
}

fn create_request(name: &str, requisite: &[&str]) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.into(),
        capacity_range: capacity_range(16 * MIB, 0),
        volume_capabilities: vec![mount_capability(Mode::SingleNodeWriter, "ext4", &[], "")],
        accessibility_requirements: Some(TopologyRequirement {
            requisite: requisite.iter().map(|z| zone(z)).collect(),
            preferred: vec![zone(requisite[0])],
        }),
        ..Default::default()
    }
}

async fn advertises_constraints(client: &Client) -> bool {
    let wanted = plugin_capability::service::Type::VolumeAccessibilityConstraints as i32;
    services(client).await.contains(&wanted)
}

/// LV names in the lab's VG.
fn lvs(lab: &Lab) -> String {
    let out = run("lvs", &["--noheadings", "-o", "lv_name", &lab.vg]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

guest_test!(a_storage_host_in_zone_a_serves_zone_a_only, async {
    let lab = Lab::from_env();
    let options = DriverOptions::default()
        .controller([format!("--accessible-topology={KEY}=a")])
        .node([format!("--topology={KEY}=a")]);
    let driver = Driver::start(&lab, options).await;
    assert!(advertises_constraints(&driver.controller).await);
    assert!(advertises_constraints(&driver.node).await);
    let info = node_info(&driver.node).await;
    assert_eq!(info.accessible_topology, Some(zone("a")));

    let mut controller = driver.controller_rpc();
    let before = lvs(&lab);
    let refused = controller
        .create_volume(create_request("pvc-zone-b", &["b", "c"]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("zone=a"), "{refused:?}");
    assert_eq!(lvs(&lab), before, "a refused CreateVolume carved nothing");

    let volume = controller
        .create_volume(create_request("pvc-zone-a", &["b", "a"]))
        .await
        .unwrap_or_else(|s| panic!("CreateVolume: {s:?}\n{}", driver.logs()))
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(volume.accessible_topology, vec![zone("a")]);
    let entry = list_entry(&driver, &volume.volume_id).await;
    assert_eq!(
        entry.volume.expect("volume").accessible_topology,
        vec![zone("a")]
    );
    // The same name, now asked for zone b only: incompatible.
    let again = controller
        .create_volume(create_request("pvc-zone-a", &["b"]))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists, "{again:?}");

    let capacity = |z: &str| GetCapacityRequest {
        accessible_topology: Some(zone(z)),
        ..Default::default()
    };
    let here = controller
        .get_capacity(capacity("a"))
        .await
        .unwrap()
        .into_inner();
    assert!(here.available_capacity > 0, "{here:?}");
    let there = controller
        .get_capacity(capacity("b"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(there.available_capacity, 0);

    controller
        .delete_volume(DeleteVolumeRequest {
            volume_id: volume.volume_id,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_no_leaks(&lab, Some(driver.dir.path()));
});
