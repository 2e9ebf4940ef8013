//! Guest tier, controller: ACL isolation, single-node attachment, the unpublish fence, CHAP and
//! the storage-host reboot (LIO wiped, LVs deactivated, controller restarted: it serves while
//! reconciling, Probe goes not ready → ready, and every export and ACL comes back exactly), with
//! each LIO backend, ending with leak accounting.

use carve_guest_tests::{
    Driver, DriverOptions, Lab, assert_no_leaks, guest_test,
    iscsi::{any_logged_in, login_as, logout_and_forget},
    lio, run_ok,
    volume::{self, MIB, Spec, ext4},
};
use csi_proto::v1::{
    ControllerPublishVolumeRequest, ControllerUnpublishVolumeRequest, DeleteVolumeRequest,
};
use std::{collections::HashMap, path::Path, time::Duration};

/// The CHAP user and password node1 logs in with.
const CHAP: (&str, &str) = ("node1user", "node1-secret-pw");

async fn create(driver: &Driver, name: &str) -> (String, HashMap<String, String>) {
    let vol = volume::create(driver, &Spec::new(name, 32 * MIB, ext4()))
        .await
        .unwrap_or_else(|s| panic!("CreateVolume: {s:?}\n{}", driver.logs()));
    (vol.id, vol.context)
}

fn publish_request(
    volume: &str,
    node: &str,
    secrets: &HashMap<String, String>,
) -> ControllerPublishVolumeRequest {
    ControllerPublishVolumeRequest {
        volume_id: volume.into(),
        node_id: node.into(),
        volume_capability: Some(ext4()),
        secrets: secrets.clone(),
        ..Default::default()
    }
}

/// Restarts the controller and polls Probe until ready, asking meanwhile for `volume`; returns
/// the Probe answers and the codes of those requests (Identity works all along).
async fn restart_and_watch(driver: &mut Driver, volume: &str) -> (Vec<bool>, Vec<tonic::Code>) {
    let mut client = driver.spawn_controller().await;
    let (mut probes, mut codes) = (Vec::new(), Vec::new());
    for _ in 0..1200 {
        client
            .identity
            .get_plugin_info(csi_proto::v1::GetPluginInfoRequest {})
            .await
            .expect("identity answers during reconciliation");
        let ready = client
            .identity
            .probe(csi_proto::v1::ProbeRequest {})
            .await
            .expect("probe")
            .into_inner()
            .ready
            .unwrap_or(true);
        probes.push(ready);
        if ready {
            break;
        }
        let answer = client
            .controller
            .controller_get_volume(csi_proto::v1::ControllerGetVolumeRequest {
                volume_id: volume.into(),
            })
            .await;
        codes.push(answer.map_or_else(|s| s.code(), |_| tonic::Code::Ok));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    probes.dedup();
    codes.dedup();
    driver.controller = client;
    (probes, codes)
}

async fn acl_isolation_single_node_and_fence(backend: &'static str) {
    let lab = Lab::from_env();
    let driver = Driver::start(&lab, DriverOptions::default().backend(backend)).await;
    let (volume, context) = create(&driver, &format!("pvc-fence-{backend};--force")).await;
    let target = context["targetIqn"].clone();
    let mut controller = driver.controller_rpc();
    let none = HashMap::new();
    controller
        .controller_publish_volume(publish_request(&volume, &lab.initiator, &none))
        .await
        .expect("publish node1");
    controller
        .controller_publish_volume(publish_request(&volume, &lab.initiator, &none))
        .await
        .expect("republish node1");

    assert_eq!(login_as(&lab, &target, "default", None), 0, "node1 logs in");
    assert!(any_logged_in());
    assert_eq!(
        login_as(&lab, &target, &lab.iface2, None),
        24,
        "node2 has no ACL"
    );
    let refused = controller
        .controller_publish_volume(publish_request(&volume, &lab.initiator2, &none))
        .await
        .expect_err("single-node volume published elsewhere");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains(&lab.initiator),
        "{}",
        refused.message()
    );

    let entry = volume::list_entry(&driver, &volume).await;
    assert_eq!(
        entry.status.as_ref().unwrap().published_node_ids,
        std::slice::from_ref(&lab.initiator)
    );

    let unpublish = ControllerUnpublishVolumeRequest {
        volume_id: volume.clone(),
        node_id: lab.initiator.clone(),
        ..Default::default()
    };
    controller
        .controller_unpublish_volume(unpublish.clone())
        .await
        .expect("unpublish");
    let mut fenced = false;
    for _ in 0..50 {
        if !any_logged_in() {
            fenced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(fenced, "removing the ACL ends node1's session");
    // Before LVM runs again: this host's LVM scans the initiator's disks, and I/O to a fenced
    // disk blocks until iscsid's replacement_timeout.
    logout_and_forget(&lab, &target);
    controller
        .controller_unpublish_volume(unpublish)
        .await
        .expect("unpublish is idempotent");
    let delete = DeleteVolumeRequest {
        volume_id: volume.clone(),
        ..Default::default()
    };
    controller
        .delete_volume(delete.clone())
        .await
        .expect("delete");
    controller
        .delete_volume(delete)
        .await
        .expect("delete is idempotent");
    assert_no_leaks(&lab, Some(driver.dir.path()));
}

async fn reboot_restores_exports_and_chap_acls(backend: &'static str) {
    let lab = Lab::from_env();
    let scratch = tempfile::tempdir_in("/var/tmp").unwrap();
    let saveconfig = scratch.path().join("saveconfig.json");
    let options = DriverOptions::default()
        .backend(backend)
        .controller(["--saveconfig".into(), saveconfig.display().to_string()]);
    let mut driver = Driver::start(&lab, options).await;
    let (volume, context) = create(&driver, &format!("pvc-reboot-{backend}")).await;
    let target = context["targetIqn"].clone();
    // Beside the CHAP volume: one published to each node without CHAP, one unpublished.
    let mut others = Vec::new();
    for (i, node) in [Some(&lab.initiator), Some(&lab.initiator2), None]
        .into_iter()
        .enumerate()
    {
        let (id, context) = create(&driver, &format!("pvc-reboot-{backend}-{i}")).await;
        if let Some(node) = node {
            driver
                .controller_rpc()
                .controller_publish_volume(publish_request(&id, node, &HashMap::new()))
                .await
                .expect("publish without CHAP");
        }
        others.push((id, context["targetIqn"].clone()));
    }
    let secrets = HashMap::from([
        ("chapUsername".to_string(), "node1user".to_string()),
        ("chapPassword".to_string(), "node1-secret-pw".to_string()),
    ]);
    let mut controller = driver.controller_rpc();
    controller
        .controller_publish_volume(publish_request(&volume, &lab.initiator, &secrets))
        .await
        .expect("publish with CHAP");
    assert_eq!(
        login_as(&lab, &target, "default", None),
        24,
        "CHAP is enforced"
    );
    logout_and_forget(&lab, &target);
    assert_eq!(
        login_as(&lab, &target, "default", Some(CHAP)),
        0,
        "CHAP login"
    );
    logout_and_forget(&lab, &target);
    for _ in 0..100 {
        if std::fs::read_to_string(&saveconfig).is_ok_and(|s| s.contains("node1user")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Saves are coalesced (one ~2 s after a burst); let the trailing one land, so that the
    // wipe below happens after the last save, as with a real reboot (the controller dies with
    // the host). A save *after* LIO is wiped under a running controller would record the empty
    // state; CHAP ACLs then wait for the CO's republish (never restored without CHAP).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let saved = std::fs::read_to_string(&saveconfig).expect("saveconfig written");
    assert!(saved.contains("node1user"), "CHAP credentials saved");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&saveconfig)
            .expect("saveconfig written")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let targets: Vec<&str> = std::iter::once(target.as_str())
        .chain(others.iter().map(|(_, t)| t.as_str()))
        .collect();
    let exported = lio::acls_of(&targets);
    lio::wipe();
    assert!(
        !Path::new(lio::CONFIGFS)
            .join("iscsi")
            .join(&target)
            .exists()
    );
    // As after a reboot, the LVs are inactive too: restoring them takes a while, and the
    // controller serves meanwhile.
    for id in std::iter::once(&volume).chain(others.iter().map(|(id, _)| id)) {
        run_ok("lvchange", &["-an", &format!("{}/{id}", lab.vg)]);
    }
    let (probes, codes) = restart_and_watch(&mut driver, &others[2].0).await;
    assert_eq!(
        probes.first(),
        Some(&false),
        "Probe is not ready while reconciliation runs: {probes:?}\n{}",
        driver.logs()
    );
    assert!(
        codes
            .iter()
            .all(|c| matches!(c, tonic::Code::Ok | tonic::Code::Unavailable)),
        "an RPC on a volume not restored yet answers UNAVAILABLE: {codes:?}"
    );
    eprintln!("probes while restoring: {probes:?}; ControllerGetVolume answers: {codes:?}");
    assert_eq!(
        lio::acls_of(&targets),
        exported,
        "every export and ACL back exactly, once ready\n{}",
        driver.logs()
    );
    let acl = Path::new(lio::CONFIGFS)
        .join("iscsi")
        .join(&target)
        .join("tpgt_1/acls")
        .join(&lab.initiator);
    assert!(
        acl.join("lun_0").is_dir(),
        "ACL restored from the LV tags\n{}",
        driver.logs()
    );
    assert_eq!(
        std::fs::read_to_string(acl.join("auth/userid"))
            .unwrap()
            .trim(),
        "node1user"
    );
    assert_eq!(
        login_as(&lab, &target, "default", Some(CHAP)),
        0,
        "login after the reboot"
    );
    logout_and_forget(&lab, &target);
    // A restart with LIO intact finds every ACL, the CHAP one included, as its publication
    // records it (start-up reconciliation reads write protection and CHAP from the kernel):
    // nothing is set again or removed.
    driver.kill_controller();
    driver.start_controller().await;
    assert_eq!(
        lio::acls_of(&targets),
        exported,
        "every ACL kept by a restart with LIO intact\n{}",
        driver.logs()
    );
    assert!(
        !driver
            .logs()
            .contains("grants other than its publication records"),
        "no ACL set again or removed: {}",
        driver.logs()
    );
    assert!(
        !driver.logs().contains("node1-secret-pw"),
        "no secret in the logs"
    );

    let mut controller = driver.controller_rpc();
    let published = [(&volume, &lab.initiator)].into_iter().chain([
        (&others[0].0, &lab.initiator),
        (&others[1].0, &lab.initiator2),
    ]);
    for (id, node) in published {
        controller
            .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
                volume_id: id.clone(),
                node_id: node.clone(),
                ..Default::default()
            })
            .await
            .expect("unpublish");
    }
    for id in std::iter::once(volume).chain(others.into_iter().map(|(id, _)| id)) {
        controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: id,
                ..Default::default()
            })
            .await
            .expect("delete");
    }
    assert_no_leaks(&lab, Some(driver.dir.path()));
}

guest_test!(configfs_acl_isolation_single_node_and_fence, async {
    acl_isolation_single_node_and_fence("configfs").await;
});

guest_test!(targetcli_acl_isolation_single_node_and_fence, async {
    acl_isolation_single_node_and_fence("targetcli").await;
});

guest_test!(configfs_reboot_restores_exports_and_chap_acls, async {
    reboot_restores_exports_and_chap_acls("configfs").await;
});

guest_test!(targetcli_reboot_restores_exports_and_chap_acls, async {
    reboot_restores_exports_and_chap_acls("targetcli").await;
});
