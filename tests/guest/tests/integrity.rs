//! Guest tier, controller integrity (issue #15): space promised never exceeds the thin pool's
//! overprovision ratio, even under parallel CreateVolume calls; nothing a tenant wrote is
//! readable from the next volume carved from the same extents or chunks (linear: quarantine
//! and wipe; thin: the pool's zeroing, refused when it is off). Each scenario makes its own
//! small pool or volume group and removes it at the end, then accounts for leaks.

use carve_guest_tests::{
    Driver, DriverOptions, Lab, assert_no_leaks, guest_test, identity, lio,
    pools::{OwnVg, Pool},
    run, run_ok,
    volume::{MIB, MIB_LEN, delete_volume},
};
use carvectl::request::{block_capability, capacity_range};
use csi_proto::v1::{CreateVolumeRequest, volume_capability::access_mode::Mode};
use std::{
    collections::HashMap,
    io::{Read, Write},
    time::{Duration, Instant},
};

fn thin_request(name: &str, size: i64) -> CreateVolumeRequest {
    request(name, size, true)
}

fn request(name: &str, size: i64, thin: bool) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.into(),
        capacity_range: capacity_range(size, 0),
        volume_capabilities: vec![block_capability(Mode::SingleNodeWriter)],
        parameters: HashMap::from([("thin".into(), thin.to_string())]),
        ..Default::default()
    }
}

const MARKER: &[u8; 16] = b"CARVE-15-TENANT!";

/// Fills the volume's device on this storage host with [`MARKER`], then flushes it.
fn write_marker(vg: &str, volume: &str) {
    let path = format!("/dev/{vg}/{volume}");
    let mut dev = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open {path}: {e}"));
    let chunk: Vec<u8> = MARKER.iter().copied().cycle().take(MIB_LEN).collect();
    loop {
        match dev.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC: the end of the device
            Err(e) => panic!("write {path}: {e}"),
        }
    }
    dev.sync_all().expect("fsync");
}

/// Byte offsets in the volume's device where [`MARKER`] is found (reads the whole device,
/// bypassing nothing but its own fresh page cache: the device node is new).
fn find_marker(vg: &str, volume: &str) -> Vec<u64> {
    let path = format!("/dev/{vg}/{volume}");
    let _ = run("blockdev", &["--flushbufs", &path]);
    let mut dev = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    let mut buf = vec![0u8; MIB_LEN];
    let (mut found, mut offset) = (Vec::new(), 0u64);
    loop {
        let n = dev.read(&mut buf).expect("read");
        if n == 0 {
            return found;
        }
        for (i, window) in buf[..n].chunks(16).enumerate() {
            if window == MARKER {
                found.push(offset + (i * 16) as u64);
                if found.len() > 8 {
                    return found;
                }
            }
        }
        offset += n as u64;
    }
}

/// The physical extents an LV occupies (`seg_pe_ranges`, e.g. `/dev/loop1:18-33`).
fn pe_ranges(vg: &str, lv: &str) -> String {
    run_ok(
        "lvs",
        &["--noheadings", "-o", "seg_pe_ranges", &format!("{vg}/{lv}")],
    )
    .trim()
    .to_string()
}

/// Waits until no quarantined LV is left in `vg` (the wiper has zeroed and removed them).
fn wait_wiped(vg: &str) {
    let deadline = Instant::now() + Duration::from_mins(2);
    loop {
        let lvs = run_ok("lvs", &["--noheadings", "-o", "lv_name", vg]);
        if !lvs.contains("carve-wipe-") {
            return;
        }
        assert!(Instant::now() < deadline, "still quarantined: {lvs}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

async fn create_id(driver: &Driver, req: CreateVolumeRequest) -> String {
    driver
        .controller_rpc()
        .create_volume(req)
        .await
        .unwrap_or_else(|s| panic!("CreateVolume: {s:?}\n{}", driver.logs()))
        .into_inner()
        .volume
        .expect("volume")
        .volume_id
}

guest_test!(a_new_volume_never_reads_a_deleted_tenants_data, async {
    let base = Lab::from_env();
    let own = OwnVg::create("i15vg", "200m", "64m");
    let lab = own.lab(&base);
    // Thin admission reads the pool's zeroing flag from the refresher's reading (every 10 s by
    // default): every second here, so the hand edit below reaches it within the wait there.
    let options = DriverOptions::default().controller(["--thin-pool-refresh-interval", "1"]);
    let driver = Driver::start(&lab, options).await;

    // Linear: the same 64 MiB of extents, written, deleted, carved again.
    let first = create_id(&driver, request("tenant-a", 64 * MIB, false)).await;
    write_marker(&lab.vg, &first);
    assert!(
        !find_marker(&lab.vg, &first).is_empty(),
        "the marker was written"
    );
    let extents = pe_ranges(&lab.vg, &first);
    let started = Instant::now();
    delete_volume(&driver, &first).await;
    let delete_took = started.elapsed();
    wait_wiped(&lab.vg);
    let second = create_id(&driver, request("tenant-b", 64 * MIB, false)).await;
    assert_eq!(
        pe_ranges(&lab.vg, &second),
        extents,
        "the test reuses the same extents"
    );
    assert_eq!(
        find_marker(&lab.vg, &second),
        Vec::<u64>::new(),
        "linear remanence"
    );
    delete_volume(&driver, &second).await;
    wait_wiped(&lab.vg);
    eprintln!("linear DeleteVolume answered in {delete_took:?}");

    // Thin: the pool's whole 64 MiB of chunks written, deleted, provisioned again by a small
    // write into a new volume.
    let first = create_id(&driver, request("tenant-c", 60 * MIB, true)).await;
    write_marker(&lab.vg, &first);
    delete_volume(&driver, &first).await;
    let second = create_id(&driver, request("tenant-d", 60 * MIB, true)).await;
    {
        let path = format!("/dev/{}/{second}", lab.vg);
        let mut dev = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        for offset in (0..60 * MIB as u64).step_by(4 << 20) {
            use std::io::Seek;
            dev.seek(std::io::SeekFrom::Start(offset)).unwrap();
            dev.write_all(&[0x5a; 512]).unwrap();
        }
        dev.sync_all().unwrap();
    }
    assert_eq!(
        find_marker(&lab.vg, &second),
        Vec::<u64>::new(),
        "thin remanence"
    );
    delete_volume(&driver, &second).await;

    // A pool that stops zeroing: Probe not ready at once (it reads the pool), thin CreateVolume
    // refused once the refresher read it; both back when it zeroes.
    run_ok("lvchange", &["--zero", "n", &format!("{}/pool", lab.vg)]);
    assert_eq!(identity::ready(&driver.controller).await, Some(false));
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let status = driver
        .controller_rpc()
        .create_volume(request("tenant-e", 8 * MIB, true))
        .await
        .expect_err("an unzeroed pool is refused");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("does not zero"), "{status:?}");
    run_ok("lvchange", &["--zero", "y", &format!("{}/pool", lab.vg)]);
    assert_eq!(identity::ready(&driver.controller).await, Some(true));
    // ...and admitted again once the refresher read it zeroing (device-mapper's table line).
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let again = create_id(&driver, request("tenant-e", 8 * MIB, true)).await;
    delete_volume(&driver, &again).await;
    assert_read_from_device_mapper(&driver, &lab);

    drop(driver);
    assert_no_leaks(&lab, None);
    drop(own);
});

/// The refresher read the thin pool from device-mapper's real lines (`dmsetup status` and
/// `table` of its `-tpool` layer succeeded, and were parsed: a line it cannot parse is logged
/// as read from LVM instead). LVM may still have been read while it was adding that layer under
/// the first thin LV (neither device name exists for a moment), so that alone is not a failure.
fn assert_read_from_device_mapper(driver: &Driver, lab: &Lab) {
    let logs = driver.logs();
    let tpool = format!("dmsetup table -- {}-pool-tpool code=0", lab.vg);
    let read = logs.lines().filter(|l| l.contains(&tpool)).count();
    let fallbacks = logs
        .lines()
        .filter(|l| l.contains("not readable from device-mapper"))
        .count();
    assert!(
        read >= 2 && fallbacks < read,
        "the pool is read from device-mapper: {read} readings, {fallbacks} from LVM:\n{logs}"
    );
}

/// Virtual bytes promised in `pool`, as LVM reports them.
fn promised(lab: &Lab, pool: &str) -> u64 {
    let out = run_ok(
        "lvs",
        &[
            "--noheadings",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            "pool_lv,lv_size",
            &lab.vg,
        ],
    );
    out.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (p, size) = (fields.next()?, fields.next()?);
            (p == pool).then(|| size.parse::<u64>().ok()).flatten()
        })
        .sum()
}

guest_test!(
    parallel_creates_never_exceed_the_overprovision_ratio,
    async {
        let base = Lab::from_env();
        let pool = Pool::create(&base, "i15ratio", "1g", true);
        let lab = pool.lab(&base);
        let options = DriverOptions::default().controller(["--thin-overprovision-ratio", "1"]);
        let driver = Driver::start(&lab, options).await;
        let calls = (0..8).map(|i| {
            let mut client = driver.controller_rpc();
            tokio::spawn(async move {
                client
                    .create_volume(thin_request(&format!("ratio-{i}"), 512 * MIB))
                    .await
                    .map(|r| r.into_inner().volume.expect("volume").volume_id)
            })
        });
        let mut created = Vec::new();
        let mut refused = Vec::new();
        for call in calls.collect::<Vec<_>>() {
            match call.await.expect("task") {
                Ok(id) => created.push(id),
                Err(status) => refused.push(status),
            }
        }
        assert_eq!(created.len(), 2, "refusals: {refused:?}\n{}", driver.logs());
        for status in &refused {
            assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
            assert!(
                status.message().contains("1073741824 bytes x ratio 1"),
                "the refusal names the figures: {status:?}"
            );
        }
        assert_eq!(promised(&lab, &pool.name), 1 << 30);
        for id in created {
            delete_volume(&driver, &id).await;
        }
        drop(driver);
        drop(pool);
        assert_no_leaks(&lab, None);
    }
);

guest_test!(a_full_thin_pool_shows_in_condition_and_capacity, async {
    use csi_proto::v1::{ControllerGetVolumeRequest, GetCapacityRequest, ListVolumesRequest};
    let base = Lab::from_env();
    let own = OwnVg::create("i15full", "200m", "64m");
    let lab = own.lab(&base);
    // The refresher reads the pool every second here (from device-mapper, no LVM).
    let options = DriverOptions::default().controller(["--thin-pool-refresh-interval", "1"]);
    let driver = Driver::start(&lab, options).await;
    let thin = HashMap::from([("thin".to_string(), "true".to_string())]);
    let capacity = || async {
        driver
            .controller_rpc()
            .get_capacity(GetCapacityRequest {
                parameters: thin.clone(),
                ..Default::default()
            })
            .await
            .expect("GetCapacity")
            .into_inner()
            .available_capacity
    };
    assert!(capacity().await >= 60 * MIB, "an empty pool has room");
    let id = create_id(&driver, request("filler", 64 * MIB, true)).await;
    write_marker(&lab.vg, &id);
    let data = run_ok(
        "lvs",
        &[
            "--noheadings",
            "-o",
            "data_percent",
            &format!("{}/pool", lab.vg),
        ],
    );
    assert_eq!(data.trim(), "100.00", "the pool is full");
    // No LVM read of the pool since the write but the refresher's: a thin claim is refused on
    // what device-mapper said of it.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let status = driver
        .controller_rpc()
        .create_volume(request("overflow", 8 * MIB, true))
        .await
        .expect_err("a full pool takes no new thin volume");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("full"), "{status:?}");
    assert_read_from_device_mapper(&driver, &lab);

    assert_eq!(capacity().await, 0, "a full pool offers nothing");
    let got = driver
        .controller_rpc()
        .controller_get_volume(ControllerGetVolumeRequest {
            volume_id: id.clone(),
        })
        .await
        .expect("ControllerGetVolume")
        .into_inner();
    let condition = got
        .status
        .and_then(|s| s.volume_condition)
        .expect("condition");
    assert!(condition.abnormal, "{condition:?}");
    assert!(condition.message.contains("full"), "{condition:?}");
    let listed = driver
        .controller_rpc()
        .list_volumes(ListVolumesRequest::default())
        .await
        .expect("ListVolumes")
        .into_inner();
    let entry = listed
        .entries
        .iter()
        .find(|e| e.volume.as_ref().is_some_and(|v| v.volume_id == id))
        .expect("listed");
    let condition = entry
        .status
        .as_ref()
        .and_then(|s| s.volume_condition.clone())
        .expect("condition");
    assert!(
        condition.abnormal && condition.message.contains("full"),
        "{condition:?}"
    );

    delete_volume(&driver, &id).await;
    assert!(
        capacity().await >= 60 * MIB,
        "room again once the volume is gone"
    );
    drop(driver);
    assert_no_leaks(&lab, None);
    drop(own);
});

// LVM keeps every LV with its tags in each PV's metadata area (room for two copies): a full
// area refuses the next change. A 60 KiB area fills after a few dozen volumes; the default
// 1 MiB after about a thousand (docs/kubernetes.md, "The LVM metadata area").
guest_test!(
    a_full_lvm_metadata_area_is_resource_exhausted_and_deletes_still_work,
    async {
        use tonic::Code;
        let base = Lab::from_env();
        let own = OwnVg::with_small_metadata_area("i15mda", "400m", "64m");
        let lab = own.lab(&base);
        // Room in the pool for every volume the area can hold: only the area limits here.
        let options = DriverOptions::default().controller(["--thin-overprovision-ratio", "100"]);
        let driver = Driver::start(&lab, options).await;
        let lvs = || {
            run_ok("lvs", &["--noheadings", "-o", "lv_name", &lab.vg])
                .split_whitespace()
                .filter(|n| n.starts_with("csi-"))
                .count()
        };
        // Each volume's tags carry its claim (--extra-create-metadata) at Kubernetes' longest
        // names, so fewer volumes fill the area.
        let tagged = |name: &str| {
            let mut req = thin_request(name, 4 * MIB);
            for key in ["pvc/name", "pv/name"] {
                req.parameters
                    .insert(format!("csi.storage.k8s.io/{key}"), "c".repeat(253));
            }
            req.parameters
                .insert("csi.storage.k8s.io/pvc/namespace".into(), "s".repeat(63));
            req
        };
        let mut ids = Vec::new();
        let refused = loop {
            assert!(ids.len() < 100, "a 60 KiB metadata area held 100 volumes");
            let name = format!("mda-{}-{}", ids.len(), "n".repeat(110));
            match driver.controller_rpc().create_volume(tagged(&name)).await {
                Ok(r) => ids.push(r.into_inner().volume.expect("volume").volume_id),
                Err(status) => break status,
            }
        };
        eprintln!("{} volumes fit; then: {refused:?}", ids.len());
        assert!(!ids.is_empty(), "the area holds some volumes first");
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        assert!(
            refused.message().contains("metadata area")
                && refused.message().contains("--metadatasize"),
            "the reason and the remedy: {refused:?}"
        );
        assert_eq!(lvs(), ids.len(), "the refused create left no LV");
        let again = driver
            .controller_rpc()
            // A longer name than any created: it needs more room than the refused one.
            .create_volume(tagged(&format!("mda-again-{}", "n".repeat(110))))
            .await
            .expect_err("still full");
        assert_eq!(again.code(), Code::ResourceExhausted, "{again:?}");
        // A delete shrinks the metadata: it works on a full area, and makes room again (for a
        // volume with a shorter name than the deleted one's).
        let last = ids.pop().expect("one");
        delete_volume(&driver, &last).await;
        ids.push(create_id(&driver, tagged(&format!("mda-room-{}", "n".repeat(100)))).await);
        assert_eq!(lvs(), ids.len());
        for id in &ids {
            delete_volume(&driver, id).await;
        }
        assert_eq!(lvs(), 0);
        drop(driver);
        drop(own);
        assert_no_leaks(&base, None);
    }
);

/// ControllerUnpublish of volume `id` from `node`, which must succeed.
async fn unpublish(driver: &Driver, id: &str, node: &str) {
    driver
        .controller_rpc()
        .controller_unpublish_volume(csi_proto::v1::ControllerUnpublishVolumeRequest {
            volume_id: id.to_string(),
            node_id: node.to_string(),
            ..Default::default()
        })
        .await
        .expect("ControllerUnpublish");
}

/// ControllerPublish of `request`, which must succeed; the target IQN its publish_context names.
async fn publish_target(
    driver: &Driver,
    request: csi_proto::v1::ControllerPublishVolumeRequest,
) -> String {
    let id = request.volume_id.clone();
    let published = driver
        .controller_rpc()
        .controller_publish_volume(request)
        .await
        .unwrap_or_else(|s| panic!("ControllerPublish: {s:?}\n{}", driver.logs()))
        .into_inner();
    published
        .publish_context
        .values()
        .find(|v| v.starts_with("iqn.") && v.contains(&id))
        .cloned()
        .unwrap_or_else(|| panic!("target IQN in {:?}", published.publish_context))
}

guest_test!(a_revoked_acl_never_comes_back_from_saveconfig, async {
    use csi_proto::v1::ControllerPublishVolumeRequest;
    let lab = Lab::from_env();
    let files = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let saveconfig = files.path().join("saveconfig.json");
    let options = DriverOptions::default()
        .controller(["--saveconfig".into(), saveconfig.display().to_string()]);
    let mut driver = Driver::start(&lab, options).await;
    let id = create_id(&driver, request("revoked", 16 * MIB, true)).await;
    let publish = ControllerPublishVolumeRequest {
        volume_id: id.clone(),
        node_id: lab.initiator.clone(),
        volume_capability: Some(block_capability(Mode::SingleNodeWriter)),
        ..Default::default()
    };
    let target = publish_target(&driver, publish.clone()).await;
    // The grant reaches the file (coalesced save); keep that file as a stale copy.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&saveconfig).is_ok_and(|s| s.contains(&lab.initiator)) {
        assert!(Instant::now() < deadline, "the grant was never saved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stale = files.path().join("stale.json");
    std::fs::copy(&saveconfig, &stale).expect("copy");

    unpublish(&driver, &id, &lab.initiator).await;
    // Killed right after the answer: no coalesced save, no shutdown flush.
    driver.kill_controller();
    let saved = std::fs::read_to_string(&saveconfig).expect("saveconfig");
    assert!(saved.contains(&target), "the volume's target is saved");
    assert!(
        !saved.contains(&lab.initiator),
        "the revoked ACL is not in the file"
    );
    lio::restore_from(&saveconfig);
    assert!(
        !lio::has_acl(&target, &lab.initiator),
        "restored without the revoked ACL"
    );
    driver.start_controller().await;
    assert!(
        !lio::has_acl(&target, &lab.initiator),
        "not granted again at start"
    );

    // A restore from a stale file (saved before the revoke) grants it; the controller, whose
    // record says otherwise, takes it away at start.
    driver.kill_controller();
    lio::restore_from(&stale);
    assert!(
        lio::has_acl(&target, &lab.initiator),
        "the stale file grants it"
    );
    driver.start_controller().await;
    assert!(
        !lio::has_acl(&target, &lab.initiator),
        "reconciliation removed the unrecorded ACL"
    );
    let saved = std::fs::read_to_string(&saveconfig).expect("saveconfig");
    assert!(!saved.contains(&lab.initiator), "and saved that");

    // Targets made and removed by hand in configfs reach the file with the next save the
    // controller makes (a publish and an unpublish here): one found by listing iscsi/, one
    // whose capitals Carve's IQN type cannot spell, found by reading everything.
    let by_hand = [
        "iqn.2003-01.org.example:by-hand",
        "iqn.2003-01.org.example:By-Hand",
    ];
    let publish_and_unpublish = || async {
        driver
            .controller_rpc()
            .controller_publish_volume(publish.clone())
            .await
            .unwrap_or_else(|s| panic!("ControllerPublish: {s:?}\n{}", driver.logs()));
        unpublish(&driver, &id, &lab.initiator).await;
        std::fs::read_to_string(&saveconfig).expect("saveconfig")
    };
    for iqn in by_hand {
        std::fs::create_dir_all(format!("{}/iscsi/{iqn}/tpgt_1", lio::CONFIGFS))
            .unwrap_or_else(|e| panic!("mkdir target {iqn}: {e}"));
    }
    let saved = publish_and_unpublish().await;
    for iqn in by_hand {
        assert!(
            saved.contains(&format!("\"{iqn}\"")),
            "{iqn} made by hand is saved"
        );
    }
    for iqn in by_hand {
        std::fs::remove_dir(format!("{}/iscsi/{iqn}/tpgt_1", lio::CONFIGFS)).expect("rmdir tpg");
        std::fs::remove_dir(format!("{}/iscsi/{iqn}", lio::CONFIGFS)).expect("rmdir target");
    }
    let saved = publish_and_unpublish().await;
    for iqn in by_hand {
        assert!(
            !saved.contains(iqn),
            "{iqn} removed by hand is gone from the file"
        );
    }
    assert!(
        saved.contains(&target),
        "the volume's target is still saved"
    );

    delete_volume(&driver, &id).await;
    drop(driver);
    assert_no_leaks(&lab, None);
});

// A read-only publication whose ACL was made writable by hand (or restored so from a stale or
// edited saveconfig.json) is write-protected again by the next start's reconciliation.
guest_test!(
    a_hand_edited_acl_is_set_back_to_its_publication_at_start,
    async {
        use csi_proto::v1::ControllerPublishVolumeRequest;
        let lab = Lab::from_env();
        let mut driver = Driver::start(&lab, DriverOptions::default()).await;
        let id = create_id(&driver, request("hand-edited", 16 * MIB, true)).await;
        let request = ControllerPublishVolumeRequest {
            volume_id: id.clone(),
            node_id: lab.initiator.clone(),
            volume_capability: Some(block_capability(Mode::SingleNodeWriter)),
            readonly: true,
            ..Default::default()
        };
        let target = publish_target(&driver, request).await;
        let write_protect = format!(
            "{}/iscsi/{target}/tpgt_1/acls/{}/lun_0/write_protect",
            lio::CONFIGFS,
            lab.initiator
        );
        let read = || std::fs::read_to_string(&write_protect).expect("write_protect");
        assert_eq!(read().trim(), "1", "published read-only");
        driver.kill_controller();
        std::fs::write(&write_protect, "0").expect("hand edit");
        assert_eq!(read().trim(), "0", "the hand edit took");
        driver.start_controller().await;
        assert_eq!(
            read().trim(),
            "1",
            "reconciliation set the read-only publication's ACL back\n{}",
            driver.logs()
        );
        assert!(lio::has_acl(&target, &lab.initiator), "the ACL is kept");
        unpublish(&driver, &id, &lab.initiator).await;
        delete_volume(&driver, &id).await;
        drop(driver);
        assert_no_leaks(&lab, None);
    }
);
