//! Guest tier, several storage hosts in one machine (issue 19): two `carve-agent`s over real
//! LVM and LIO — "east" on the lab's volume group in zone a, "west" on a small volume group of
//! its own (a 1 GiB loop device, 256 MiB thin pool) in zone b, each with its own IQN prefix —
//! and a csi-controller with an agents file reaching both over mutual TLS. The node plugin logs
//! in to the targets either agent exports.
//!
//! Shows: placement by requisite and preferred topology and by free space; GetCapacity per
//! segment equal to each volume group's own free bytes; ext4 and raw block data through an
//! agent with checksums across unstage and restage; an agent stopped mid-run makes only its
//! volumes' RPCs UNAVAILABLE (its exports keep serving the node, the other agent keeps
//! working) and all is well once it is back; a client whose certificate the CA did not sign
//! is refused, by the agent and for the controller; nothing left on either volume group, in
//! LIO or on the node. The two-machine lab (tests/guest/tests/two_machines.rs) does the same
//! over a network between two guests.

use carve_guest_tests::{
    Driver, Lab,
    agents::{self, Agent, AgentSpec, Ca, Pki, ZONE},
    assert_no_leaks, checksum, guest_test,
    pools::OwnVg,
    run_ok,
    volume::{
        BLOCK_DATA_LEN, DATA_LEN, MIB, Spec, Vol, block, controller_publish, delete_volume, ext4,
        stage_publish, teardown_all, unpublish_unstage,
    },
};
use csi_proto::v1::{
    ControllerPublishVolumeRequest, ControllerUnpublishVolumeRequest, CreateSnapshotRequest,
    CreateVolumeRequest, DeleteVolumeRequest, GetCapacityRequest, ListVolumesRequest, Topology,
    TopologyRequirement,
};
use std::collections::HashMap;
use tonic::Code;

/// Both agents, the controller over them and the node plugin. Fields drop in this order: the
/// plugins, the agents, then the second volume group.
struct Fleet {
    driver: Driver,
    east: Agent,
    west: Agent,
    pki: Pki,
    west_vg: OwnVg,
    _dir: tempfile::TempDir,
}

impl Fleet {
    async fn start() -> Self {
        let lab = Lab::from_env();
        let west_vg = OwnVg::create("carvewest", "1g", "256m");
        let dir = tempfile::Builder::new()
            .prefix("carve-agents-")
            .tempdir_in("/var/tmp")
            .expect("scratch dir");
        let pki = Pki::new(dir.path());
        // One agent on each of LIO's backends (the other LIO backend, targetcli, for west).
        let spec =
            |name: &str, vg: &str, pool: &str, port: u16, zone: &str, lio_backend| AgentSpec {
                name: name.into(),
                vg: vg.into(),
                pool: pool.into(),
                listen: format!("127.0.0.1:{port}").parse().unwrap(),
                portal: lab.portal.clone(),
                zone: zone.into(),
                lio_backend,
            };
        let east = Agent::start(
            spec("east", &lab.vg, &lab.pool, 9811, "a", "configfs"),
            &pki,
            dir.path(),
        )
        .await;
        let west = Agent::start(
            spec("west", &west_vg.vg, "pool", 9812, "b", "targetcli"),
            &pki,
            dir.path(),
        )
        .await;
        let driver = Driver::start(&lab, pki.driver_options(&[&east.spec, &west.spec])).await;
        Self {
            driver,
            east,
            west,
            pki,
            west_vg,
            _dir: dir,
        }
    }

    /// Nothing of ours left on the node, in LIO (both agents' targets) or on either volume
    /// group (east's is the lab's).
    fn assert_no_leaks(&self) {
        let lab = &self.driver.lab;
        assert_no_leaks(lab, Some(self.driver.dir.path()));
        assert_no_leaks(&self.west_vg.lab(lab), None);
    }
}

fn zone(z: &str) -> Topology {
    Topology {
        segments: HashMap::from([(ZONE.to_string(), z.to_string())]),
    }
}

/// `spec` reachable from the zones `requisite`, preferring `preferred`.
fn placed(spec: &Spec, requisite: &[&str], preferred: &[&str]) -> CreateVolumeRequest {
    CreateVolumeRequest {
        accessibility_requirements: Some(TopologyRequirement {
            requisite: requisite.iter().map(|z| zone(z)).collect(),
            preferred: preferred.iter().map(|z| zone(z)).collect(),
        }),
        ..spec.request()
    }
}

/// CreateVolume of `req` (for `spec`'s first capability): the volume or the refusal.
async fn try_create(
    driver: &Driver,
    spec: &Spec,
    req: CreateVolumeRequest,
) -> Result<Vol, tonic::Status> {
    let created = driver.controller_rpc().create_volume(req).await?;
    let volume = created.into_inner().volume.expect("volume");
    Ok(Vol::created(driver, volume, &spec.caps[0]))
}

/// CreateVolume of `spec` reachable from `requisite` preferring `preferred`; asserts it went to
/// `agent` (its id, its accessible topology, its LV in that agent's volume group).
async fn create_on(
    driver: &Driver,
    spec: &Spec,
    requisite: &[&str],
    preferred: &[&str],
    agent: &AgentSpec,
) -> Vol {
    let created = try_create(driver, spec, placed(spec, requisite, preferred)).await;
    let vol = driver.ok(format_args!("CreateVolume {}", spec.name), created);
    let local = vol
        .id
        .strip_prefix(&agent.id_prefix())
        .unwrap_or_else(|| panic!("{} should be on {}: id {}", spec.name, agent.name, vol.id));
    let lvs = run_ok("lvs", &["--noheadings", "-o", "lv_name", &agent.vg]);
    assert!(
        lvs.split_whitespace().any(|lv| lv == local),
        "{local} not in {}: {lvs}",
        agent.vg
    );
    vol
}

/// An ext4 volume `name` of `mib` MiB reachable from zone `z` only, asserted to be on `agent`.
async fn ext4_in(driver: &Driver, name: &str, mib: i64, z: &str, agent: &AgentSpec) -> Vol {
    create_on(
        driver,
        &Spec::new(name, mib * MIB, ext4()),
        &[z],
        &[],
        agent,
    )
    .await
}

/// GetCapacity of linear (`thin=false`) or thin volumes in zone `z` (None: anywhere).
async fn capacity(driver: &Driver, z: Option<&str>, thin: bool) -> Result<i64, tonic::Status> {
    driver
        .controller_rpc()
        .get_capacity(GetCapacityRequest {
            parameters: HashMap::from([("thin".to_string(), thin.to_string())]),
            accessible_topology: z.map(zone),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().available_capacity)
}

/// The free bytes of volume group `vg`, as vgs reports them.
fn vg_free(vg: &str) -> i64 {
    let out = run_ok(
        "vgs",
        &[
            "--noheadings",
            "--nosuffix",
            "--units",
            "b",
            "-o",
            "vg_free",
            vg,
        ],
    );
    out.trim().parse().expect("vg_free")
}

guest_test!(placement_capacity_and_data_through_two_agents, async {
    let fleet = Fleet::start().await;
    let (driver, east, west) = (&fleet.driver, &fleet.east.spec, &fleet.west.spec);

    // GetCapacity per segment: each zone offers exactly its own volume group's free bytes.
    let (east_free, west_free) = (vg_free(&east.vg), vg_free(&west.vg));
    assert_ne!(east_free, west_free);
    assert_eq!(
        driver.ok("GetCapacity a", capacity(driver, Some("a"), false).await),
        east_free
    );
    assert_eq!(
        driver.ok("GetCapacity b", capacity(driver, Some("b"), false).await),
        west_free
    );
    assert_eq!(
        driver.ok("GetCapacity c", capacity(driver, Some("c"), false).await),
        0
    );
    let west_thin = driver.ok(
        "GetCapacity b thin",
        capacity(driver, Some("b"), true).await,
    );
    assert!(
        west_thin < 512 * MIB,
        "west's 256 MiB pool offers {west_thin}"
    );

    // Placement: requisite decides, then preferred, then room for the bytes asked.
    let fs = Spec::new("agents-fs", 64 * MIB, ext4());
    let mut on_west = create_on(driver, &fs, &["b"], &[], west).await;
    let preferred_east = Spec::new("agents-pref-east", 16 * MIB, ext4());
    let pref = create_on(driver, &preferred_east, &["a", "b"], &["a"], east).await;
    // Preferred beats free space: west has far less room than east and still gets it.
    let preferred_west = Spec::new("agents-pref-west", 16 * MIB, ext4());
    let pref_west = create_on(driver, &preferred_west, &["a", "b"], &["b"], west).await;
    let big = Spec::new("agents-too-big-for-west", 512 * MIB, ext4());
    let roomy = create_on(driver, &big, &["a", "b"], &["b"], east).await;
    // spec.md, CreateVolume errors: "Unable to provision in `accessible_topology`".
    let in_c = Spec::new("agents-c", 16 * MIB, ext4());
    let nowhere = try_create(driver, &in_c, placed(&in_c, &["c"], &[])).await;
    assert_eq!(
        nowhere.map(|v| v.id).unwrap_err().code(),
        Code::ResourceExhausted,
        "zone c: no agent"
    );

    // ext4 through west: data across unstage and restage.
    on_west.publish =
        controller_publish(driver, &on_west, &driver.lab.initiator, HashMap::new()).await;
    assert!(
        on_west.target_iqn().starts_with(&west.iqn_prefix()),
        "west exports under its own prefix: {}",
        on_west.target_iqn()
    );
    stage_publish(driver, &driver.node, &on_west).await;
    let written = checksum::write_file(&on_west.target.join("data.bin"), DATA_LEN, 19);
    unpublish_unstage(driver, &driver.node, &on_west).await;
    stage_publish(driver, &driver.node, &on_west).await;
    assert_eq!(
        checksum::file_sha256(&on_west.target.join("data.bin")),
        written
    );

    // Raw block through east: data across unstage and restage.
    let raw = Spec::new("agents-block", 32 * MIB, block());
    let mut on_east = create_on(driver, &raw, &["a"], &[], east).await;
    on_east.publish =
        controller_publish(driver, &on_east, &driver.lab.initiator, HashMap::new()).await;
    stage_publish(driver, &driver.node, &on_east).await;
    let raw_written = checksum::write_device(&on_east.target, BLOCK_DATA_LEN, 23);
    unpublish_unstage(driver, &driver.node, &on_east).await;
    stage_publish(driver, &driver.node, &on_east).await;
    assert_eq!(
        checksum::device_sha256(&on_east.target, BLOCK_DATA_LEN),
        raw_written
    );

    teardown_all(driver, &[&on_west, &on_east]).await;
    delete_volume(driver, &pref.id).await;
    delete_volume(driver, &pref_west.id).await;
    delete_volume(driver, &roomy.id).await;
    fleet.assert_no_leaks();
});

guest_test!(a_stopped_agent_makes_only_its_volumes_unavailable, async {
    let mut fleet = Fleet::start().await;
    let east = fleet.east.spec.clone();
    let west = fleet.west.spec.clone();
    let driver = &fleet.driver;
    let mut on_west = ext4_in(driver, "stop-west", 64, "b", &west).await;
    let on_east = ext4_in(driver, "stop-east", 16, "a", &east).await;
    on_west.publish =
        controller_publish(driver, &on_west, &driver.lab.initiator, HashMap::new()).await;
    stage_publish(driver, &driver.node, &on_west).await;
    let written = checksum::write_file(&on_west.target.join("data.bin"), DATA_LEN, 29);

    let east_lvs = run_ok("lvs", &["--noheadings", "-o", "lv_name", &east.vg]);
    fleet.west.stop();
    assert!(!fleet.west.listening(), "west is down");
    let driver = &fleet.driver;
    let mut rpc = driver.controller_rpc();
    let publish = |vol: &Vol| ControllerPublishVolumeRequest {
        volume_id: vol.id.clone(),
        node_id: driver.lab.initiator2.clone(),
        volume_capability: Some(vol.cap.clone()),
        volume_context: vol.context.clone(),
        ..Default::default()
    };
    let unpublish = |vol: &Vol| ControllerUnpublishVolumeRequest {
        volume_id: vol.id.clone(),
        node_id: driver.lab.initiator2.clone(),
        ..Default::default()
    };
    // UNAVAILABLE because of west (the controller itself answers, and says which agent).
    let unavailable = |what: &str, status: tonic::Status| {
        assert_eq!(
            status.code(),
            Code::Unavailable,
            "{what} with west down: {status:?}\n{}",
            driver.logs()
        );
        assert!(
            status.message().contains("agent west"),
            "{what}: {status:?}"
        );
    };
    // West's volumes: every RPC UNAVAILABLE, never a wrong answer.
    unavailable(
        "publish west",
        rpc.controller_publish_volume(publish(&on_west))
            .await
            .unwrap_err(),
    );
    unavailable(
        "unpublish west",
        rpc.controller_unpublish_volume(unpublish(&on_west))
            .await
            .unwrap_err(),
    );
    let delete = DeleteVolumeRequest {
        volume_id: on_west.id.clone(),
        ..Default::default()
    };
    unavailable("delete west", rpc.delete_volume(delete).await.unwrap_err());
    let snapshot = CreateSnapshotRequest {
        source_volume_id: on_west.id.clone(),
        name: "stop-west-snap".into(),
        ..Default::default()
    };
    unavailable(
        "snapshot west",
        rpc.create_snapshot(snapshot).await.unwrap_err(),
    );
    let west_only = Spec::new("stop-new-west", 16 * MIB, ext4());
    let refused = try_create(driver, &west_only, placed(&west_only, &["b"], &[])).await;
    unavailable("create in zone b", refused.map(|v| v.id).unwrap_err());
    let now = run_ok("lvs", &["--noheadings", "-o", "lv_name", &east.vg]);
    assert_eq!(
        now, east_lvs,
        "a volume for zone b was not carved on east instead"
    );
    unavailable(
        "GetCapacity b",
        capacity(driver, Some("b"), false).await.unwrap_err(),
    );
    unavailable(
        "GetCapacity anywhere",
        capacity(driver, None, false).await.unwrap_err(),
    );
    let listed = rpc.list_volumes(ListVolumesRequest::default()).await;
    unavailable("ListVolumes", listed.unwrap_err());
    // West's export still serves the node (LIO is the kernel's, not the agent's): new data is
    // written through to it, and both files read back from it, not from the page cache.
    checksum::assert_still_served(&on_west.target, &written, 30);

    // East's volumes and zone a: as before.
    controller_publish(driver, &on_east, &driver.lab.initiator2, HashMap::new()).await;
    driver.ok(
        "unpublish east",
        rpc.controller_unpublish_volume(unpublish(&on_east)).await,
    );
    assert_eq!(
        driver.ok("GetCapacity a", capacity(driver, Some("a"), false).await),
        vg_free(&east.vg)
    );
    let east_new = ext4_in(driver, "stop-new-east", 16, "a", &east).await;
    delete_volume(driver, &east_new.id).await;

    // West back: its volumes answer again.
    fleet.west.restart(&fleet.pki).await;
    let driver = &fleet.driver;
    driver.ok(
        "ListVolumes",
        driver
            .controller_rpc()
            .list_volumes(ListVolumesRequest::default())
            .await,
    );
    teardown_all(driver, &[&on_west]).await;
    delete_volume(driver, &on_east.id).await;
    fleet.assert_no_leaks();
});

guest_test!(a_client_the_ca_did_not_sign_is_refused, async {
    let lab = Lab::from_env();
    let dir = tempfile::Builder::new()
        .prefix("carve-agents-")
        .tempdir_in("/var/tmp")
        .expect("scratch dir");
    let pki = Pki::new(dir.path());
    let spec = AgentSpec {
        name: "east".into(),
        vg: lab.vg.clone(),
        pool: lab.pool.clone(),
        listen: "127.0.0.1:9811".parse().unwrap(),
        portal: lab.portal.clone(),
        zone: "a".into(),
        lio_backend: "configfs",
    };
    let east = Agent::start(spec, &pki, dir.path()).await;
    east.state(&pki.controller_files())
        .await
        .expect("a client the CA signed is served");

    // Another CA signed this client's certificate (it trusts the agent's CA all the same).
    let foreign = Ca::new("foreign CA");
    let impostor = foreign.files(&dir.path().join("impostor"), &["carve-controller"], &pki.ca);
    agents::assert_refused(east.spec.listen, &impostor, || east.log()).await;

    // A controller presenting it: UNAVAILABLE, and nothing carved.
    let tls = impostor.ca.parent().expect("tls dir");
    let driver = Driver::start(&lab, pki.driver_options_with(&[&east.spec], tls)).await;
    let spec = Spec::new("foreign-cert", 16 * MIB, ext4());
    let answer = try_create(&driver, &spec, spec.request()).await;
    assert_eq!(
        answer.map(|v| v.id).unwrap_err().code(),
        Code::Unavailable,
        "{}",
        driver.logs()
    );
    // It never got past the handshake: no call reached the agent.
    for rpc in ["GetVolume", "CreateVolume"] {
        assert!(
            !east.log().contains(rpc),
            "{rpc} reached the agent:\n{}",
            east.log()
        );
    }
    let scratch = driver.dir.path().to_path_buf();
    drop(driver);
    assert_no_leaks(&lab, Some(&scratch));
});
