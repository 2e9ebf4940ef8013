//! Guest tier, the two-machine lab (issue 19): this guest is a Kubernetes node running
//! csi-controller and csi-node; the other (`hack/vm/run --storage-host`, 10.77.0.1) is a storage
//! host running carve-agent over its own LVM and LIO. They share only a QEMU network: the
//! controller reaches the agent over mutual TLS and the node logs in to its targets over iSCSI
//! across it. These tests run only in such a boot (hack/vm/suite's second boot); their names
//! start with `two_machines_`.
//!
//! Shows: ext4 and raw block data through the agent with checksums across unstage and restage;
//! a client whose certificate the CA did not sign is refused over the network; the agent stopped
//! mid-run makes its volumes' RPCs UNAVAILABLE while the node keeps its data, and everything
//! works once it is back; nothing left on either machine.

use carve_guest_tests::{
    Driver, Lab,
    agents::{self, AgentSpec, Ca, Pki},
    assert_no_leaks, checksum, guest_test,
    storage_host::StorageHost,
    volume::{
        self, BLOCK_DATA_LEN, DATA_LEN, MIB, Spec, Vol, block, controller_publish, ext4,
        stage_publish, teardown_all, unpublish_unstage,
    },
};
use csi_proto::v1::{ControllerPublishVolumeRequest, DeleteVolumeRequest, ListVolumesRequest};
use std::{collections::HashMap, net::SocketAddr};
use tonic::Code;

/// The storage host's agent for one test: started with certificates of a fresh CA, stopped
/// when dropped; the controller and node plugins on this machine, told about it.
struct Lab2 {
    driver: Driver,
    host: StorageHost,
    pki: Pki,
    spec: AgentSpec,
    _dir: tempfile::TempDir,
}

impl Lab2 {
    async fn start() -> Self {
        let lab = Lab::from_env();
        let host = StorageHost::from_env();
        let dir = tempfile::Builder::new()
            .prefix("carve-two-machines-")
            .tempdir_in("/var/tmp")
            .expect("scratch dir");
        let pki = Pki::new(dir.path());
        let ip = host.address.to_string();
        pki.ca.files(&host.agent_tls_dir(), &[&ip], &pki.ca);
        host.ask("start-agent");
        let spec = AgentSpec {
            name: "store".into(),
            vg: "carvevg".into(),
            pool: "pool".into(),
            listen: SocketAddr::new(host.address, 9811),
            portal: format!("{ip}:3260"),
            zone: "a".into(),
            lio_backend: "configfs",
        };
        agents::wait_ready(spec.listen, &pki.controller_files(), || host.agent_log()).await;
        let driver = Driver::start(&lab, pki.driver_options(&[&spec])).await;
        Self {
            driver,
            host,
            pki,
            spec,
            _dir: dir,
        }
    }

    /// Nothing of ours left on either machine.
    fn assert_no_leaks(&self) {
        let left = self.host.ask("leaks");
        assert!(left.trim().is_empty(), "left on the storage host:\n{left}");
        assert_no_leaks(&self.driver.lab, Some(self.driver.dir.path()));
    }
}

impl Drop for Lab2 {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- agent on the storage host ---\n{}",
                self.host.agent_log()
            );
        }
        let _ =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.host.ask("stop-agent")));
    }
}

/// CreateVolume of `spec` + ControllerPublish to this node: on the storage host, exported on its
/// portal.
async fn provision(lab2: &Lab2, spec: &Spec) -> Vol {
    let driver = &lab2.driver;
    let created = volume::create(driver, spec).await;
    let mut vol = driver.ok(format_args!("CreateVolume {}", spec.name), created);
    let local = vol
        .id
        .strip_prefix(&lab2.spec.id_prefix())
        .unwrap_or_else(|| panic!("{} is not the storage host's: {}", spec.name, vol.id))
        .to_string();
    let lvs = lab2.host.ask("lvs");
    assert!(
        lvs.split_whitespace().any(|lv| lv == local),
        "{local} not on the storage host: {lvs}"
    );
    vol.publish = controller_publish(driver, &vol, &driver.lab.initiator, HashMap::new()).await;
    assert_eq!(
        vol.publish["portals"], lab2.spec.portal,
        "{:?}",
        vol.publish
    );
    vol
}

guest_test!(two_machines_data_through_an_agent_over_the_network, async {
    let lab2 = Lab2::start().await;
    let driver = &lab2.driver;

    // Over the network too, only a certificate the CA signed gets in.
    let foreign = Ca::new("foreign CA");
    let dir = tempfile::tempdir().expect("tmp");
    let impostor = foreign.files(dir.path(), &["carve-controller"], &lab2.pki.ca);
    agents::assert_refused(lab2.spec.listen, &impostor, || lab2.host.agent_log()).await;
    agents::state(lab2.spec.listen, &lab2.pki.controller_files())
        .await
        .expect("the CA's client is served");

    let fs = provision(&lab2, &Spec::new("net-fs", 64 * MIB, ext4())).await;
    stage_publish(driver, &driver.node, &fs).await;
    let written = checksum::write_file(&fs.target.join("data.bin"), DATA_LEN, 31);
    // The session runs over the lab network, to the storage host.
    let peers: Vec<String> = std::fs::read_dir("/sys/class/iscsi_connection")
        .expect("iSCSI connections")
        .filter_map(Result::ok)
        .map(|c| std::fs::read_to_string(c.path().join("persistent_address")).unwrap_or_default())
        .map(|a| a.trim().to_string())
        .collect();
    assert_eq!(peers, [lab2.host.address.to_string()], "iSCSI connections");
    let raw = provision(&lab2, &Spec::new("net-block", 32 * MIB, block())).await;
    stage_publish(driver, &driver.node, &raw).await;
    let raw_written = checksum::write_device(&raw.target, BLOCK_DATA_LEN, 37);
    for vol in [&fs, &raw] {
        unpublish_unstage(driver, &driver.node, vol).await;
        stage_publish(driver, &driver.node, vol).await;
    }
    assert_eq!(checksum::file_sha256(&fs.target.join("data.bin")), written);
    assert_eq!(
        checksum::device_sha256(&raw.target, BLOCK_DATA_LEN),
        raw_written
    );
    teardown_all(driver, &[&fs, &raw]).await;
    lab2.assert_no_leaks();
});

guest_test!(two_machines_an_agent_stopped_mid_run, async {
    let lab2 = Lab2::start().await;
    let driver = &lab2.driver;
    let vol = provision(&lab2, &Spec::new("net-stop", 64 * MIB, ext4())).await;
    stage_publish(driver, &driver.node, &vol).await;
    let written = checksum::write_file(&vol.target.join("data.bin"), DATA_LEN, 41);

    lab2.host.ask("stop-agent");
    let mut rpc = driver.controller_rpc();
    // UNAVAILABLE because of the agent: the controller itself answers, and says which agent.
    let unavailable = |what: &str, status: tonic::Status| {
        assert_eq!(
            status.code(),
            Code::Unavailable,
            "{what} with the agent down: {status:?}\n{}",
            driver.logs()
        );
        assert!(
            status.message().contains("agent store"),
            "{what}: {status:?}"
        );
    };
    let publish = ControllerPublishVolumeRequest {
        volume_id: vol.id.clone(),
        node_id: driver.lab.initiator2.clone(),
        volume_capability: Some(vol.cap.clone()),
        volume_context: vol.context.clone(),
        ..Default::default()
    };
    unavailable(
        "publish",
        rpc.controller_publish_volume(publish).await.unwrap_err(),
    );
    let delete = DeleteVolumeRequest {
        volume_id: vol.id.clone(),
        ..Default::default()
    };
    unavailable("delete", rpc.delete_volume(delete).await.unwrap_err());
    let new = volume::create(driver, &Spec::new("net-new", 16 * MIB, ext4())).await;
    unavailable("create", new.map(|v| v.id).unwrap_err());
    let listed = rpc.list_volumes(ListVolumesRequest::default()).await;
    unavailable("ListVolumes", listed.unwrap_err());
    // The node keeps its data (the target is the storage host's kernel's, not the agent's): new
    // data is written through to it, and both files read back from it, not from the page cache.
    checksum::assert_still_served(&vol.target, &written, 42);

    lab2.host.ask("start-agent");
    agents::wait_ready(lab2.spec.listen, &lab2.pki.controller_files(), || {
        lab2.host.agent_log()
    })
    .await;
    driver.ok(
        "ListVolumes",
        rpc.list_volumes(ListVolumesRequest::default()).await,
    );
    teardown_all(driver, &[&vol]).await;
    lab2.assert_no_leaks();
});
