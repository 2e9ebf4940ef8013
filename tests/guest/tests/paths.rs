//! Guest tier, iSCSI paths: a volume staged through an IPv6 portal (`[::1]:3260`, whose udev
//! by-path name carries the address without brackets), and a session that exists without its
//! disk, which NodeStage rescans once instead of waiting out its timeout: a session logged in
//! with `node.session.scan = manual` in iscsid.conf, and a disk deleted from a live session
//! behind the plugin's back. Stale sessions and node records (of Carve's targets, with no stage
//! record) are removed by the node's start-up sweep and by its upkeep loop, but never a staged
//! volume's and never one whose disk is mounted. A volume exported on two loopback portals
//! (127.0.0.1 and 127.0.0.2) is staged through a dm-multipath map, rides out the loss of one
//! portal with I/O going on, gets the path back by itself when the portal returns, and has a
//! path logged out behind the plugin's back logged in again by the upkeep loop. Volumes come
//! from the real controller (CreateVolume + ControllerPublish); data is written and verified by
//! checksum; every scenario ends with leak accounting (dm-multipath maps and registered WWIDs
//! included).

mod iscsi_paths {
    use carve_guest_tests::{
        Driver, DriverOptions, Lab, assert_no_leaks, checksum, run_ok, volume::Timer,
    };
    use carvectl::request::{block_capability, capacity_range, mount_capability};
    use csi_proto::v1::{
        ControllerPublishVolumeRequest, ControllerUnpublishVolumeRequest, CreateVolumeRequest,
        DeleteVolumeRequest, NodeGetVolumeStatsRequest, NodePublishVolumeRequest,
        NodeStageVolumeRequest, NodeUnpublishVolumeRequest, NodeUnstageVolumeRequest,
        VolumeCapability, volume_capability::access_mode::Mode,
    };
    use std::{collections::HashMap, path::PathBuf, time::Instant};

    const MIB: i64 = 1024 * 1024;
    const DATA_LEN: usize = 4 * 1024 * 1024;
    /// The node's `--device-timeout` here: a rescan happens after half of it.
    const DEVICE_TIMEOUT_S: u64 = 10;

    struct Vol {
        id: String,
        context: HashMap<String, String>,
        publish: HashMap<String, String>,
        cap: VolumeCapability,
        staging: PathBuf,
        target: PathBuf,
    }

    impl Vol {
        fn stage(&self) -> NodeStageVolumeRequest {
            NodeStageVolumeRequest {
                volume_id: self.id.clone(),
                publish_context: self.publish.clone(),
                staging_target_path: self.staging.display().to_string(),
                volume_capability: Some(self.cap.clone()),
                volume_context: self.context.clone(),
                ..Default::default()
            }
        }

        fn publish(&self) -> NodePublishVolumeRequest {
            NodePublishVolumeRequest {
                volume_id: self.id.clone(),
                publish_context: self.publish.clone(),
                staging_target_path: self.staging.display().to_string(),
                target_path: self.target.display().to_string(),
                volume_capability: Some(self.cap.clone()),
                volume_context: self.context.clone(),
                ..Default::default()
            }
        }

        fn iqn(&self) -> &str {
            &self.publish["targetIqn"]
        }
    }

    /// CreateVolume + ControllerPublish to this node.
    async fn provision(driver: &Driver, name: &str, cap: VolumeCapability) -> Vol {
        let mut controller = driver.controller.controller.clone();
        let created = controller
            .create_volume(CreateVolumeRequest {
                name: name.into(),
                capacity_range: capacity_range(32 * MIB, 0),
                volume_capabilities: vec![cap.clone()],
                parameters: HashMap::from([("thin".to_string(), "true".to_string())]),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("CreateVolume: {s:?}\n{}", driver.logs()))
            .into_inner()
            .volume
            .expect("volume");
        let publish = controller
            .controller_publish_volume(ControllerPublishVolumeRequest {
                volume_id: created.volume_id.clone(),
                node_id: driver.lab.initiator.clone(),
                volume_capability: Some(cap.clone()),
                volume_context: created.volume_context.clone(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("ControllerPublish: {s:?}\n{}", driver.logs()))
            .into_inner()
            .publish_context;
        Vol {
            staging: driver.staging_path(&created.volume_id),
            target: driver.target_path(&created.volume_id),
            id: created.volume_id,
            context: created.volume_context,
            publish,
            cap,
        }
    }

    /// NodeUnpublish + NodeUnstage, ControllerUnpublish + DeleteVolume.
    async fn teardown(driver: &Driver, vol: &Vol) {
        let mut node = driver.node.node.clone();
        node.node_unpublish_volume(NodeUnpublishVolumeRequest {
            volume_id: vol.id.clone(),
            target_path: vol.target.display().to_string(),
        })
        .await
        .unwrap_or_else(|s| panic!("NodeUnpublish: {s:?}\n{}", driver.logs()));
        node.node_unstage_volume(NodeUnstageVolumeRequest {
            volume_id: vol.id.clone(),
            staging_target_path: vol.staging.display().to_string(),
        })
        .await
        .unwrap_or_else(|s| panic!("NodeUnstage: {s:?}\n{}", driver.logs()));
        let mut controller = driver.controller.controller.clone();
        controller
            .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
                volume_id: vol.id.clone(),
                node_id: driver.lab.initiator.clone(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("ControllerUnpublish: {s:?}\n{}", driver.logs()));
        controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: vol.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("DeleteVolume: {s:?}\n{}", driver.logs()));
    }

    /// NodeStage + NodePublish; answers how long NodeStage took.
    async fn stage_publish(driver: &Driver, vol: &Vol) -> f64 {
        let mut node = driver.node.node.clone();
        let t0 = Instant::now();
        node.node_stage_volume(vol.stage())
            .await
            .unwrap_or_else(|s| panic!("NodeStage: {s:?}\n{}", driver.logs()));
        let took = t0.elapsed().as_secs_f64();
        node.node_publish_volume(vol.publish())
            .await
            .unwrap_or_else(|s| panic!("NodePublish: {s:?}\n{}", driver.logs()));
        took
    }

    /// `(sid, persistent_address, disks)` of every session to `iqn`, from sysfs.
    fn sessions_to(iqn: &str) -> Vec<(String, String, Vec<String>)> {
        let root = std::path::Path::new("/sys/class/iscsi_session");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
            let sid = entry.file_name().to_string_lossy().into_owned();
            let target =
                std::fs::read_to_string(entry.path().join("targetname")).unwrap_or_default();
            if target.trim() != iqn {
                continue;
            }
            let n = sid.trim_start_matches("session");
            let address = std::fs::read_to_string(format!(
                "/sys/class/iscsi_connection/connection{n}:0/persistent_address"
            ))
            .unwrap_or_default()
            .trim()
            .to_string();
            let mut disks = Vec::new();
            for dev in walk_blocks(&entry.path().join("device")) {
                disks.push(dev);
            }
            out.push((sid, address, disks));
        }
        out
    }

    /// Block device names under a session's `device/target*/H:C:T:L/block/`.
    fn walk_blocks(device: &std::path::Path) -> Vec<String> {
        let names = |p: &std::path::Path| -> Vec<PathBuf> {
            std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect()
        };
        let mut out = Vec::new();
        for target in names(device) {
            if !target
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("target"))
            {
                continue;
            }
            for lun in names(&target) {
                for block in names(&lun.join("block")) {
                    out.push(block.file_name().unwrap().to_string_lossy().into_owned());
                }
            }
        }
        out
    }

    fn node_log(driver: &Driver) -> String {
        std::fs::read_to_string(driver.dir.path().join("node.log")).unwrap_or_default()
    }

    /// The node with a short device timeout and no upkeep sweeps (a scenario's own hand-made
    /// session must not be swept away).
    fn options() -> DriverOptions {
        DriverOptions {
            node_args: vec![
                "--device-timeout".into(),
                DEVICE_TIMEOUT_S.to_string(),
                "--upkeep-interval".into(),
                "0".into(),
            ],
            ..DriverOptions::default()
        }
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn an_ipv6_portal_logs_in_finds_its_disk_and_carries_data() {
        let _timer =
            Timer::start("iscsi_paths::an_ipv6_portal_logs_in_finds_its_disk_and_carries_data");
        let lab = Lab::from_env();
        let driver = Driver::start(
            &lab,
            DriverOptions {
                controller_args: vec!["--portal".into(), "[::1]:3260".into()],
                ..options()
            },
        )
        .await;
        let mut vol = provision(
            &driver,
            "paths-ipv6",
            mount_capability(Mode::SingleNodeWriter, "ext4", &[], ""),
        )
        .await;
        let portals = vol.publish["portals"].clone();
        assert!(
            portals.split(',').any(|p| p == "[::1]:3260"),
            "the controller exports the IPv6 portal: {portals}"
        );
        // What a controller configured with only the IPv6 portal publishes.
        vol.publish.insert("portals".into(), "[::1]:3260".into());
        let took = stage_publish(&driver, &vol).await;
        eprintln!("stage through [::1]:3260 took {took:.1} s");
        let sessions = sessions_to(vol.iqn());
        assert_eq!(sessions.len(), 1, "{sessions:?}");
        assert_eq!(
            sessions[0].1, "::1",
            "the session runs over IPv6: {sessions:?}"
        );
        let by_path = format!("/dev/disk/by-path/ip-::1:3260-iscsi-{}-lun-0", vol.iqn());
        let disk = std::fs::canonicalize(&by_path).unwrap_or_else(|e| panic!("{by_path}: {e}"));
        assert_eq!(
            disk.file_name().unwrap().to_string_lossy(),
            sessions[0].2[0],
            "udev's by-path name (no brackets) is the session's disk"
        );
        let sum = checksum::write_file(&vol.target.join("data.bin"), DATA_LEN, 61);
        run_ok("sync", &[]);
        assert_eq!(checksum::file_sha256(&vol.target.join("data.bin")), sum);
        assert!(
            !node_log(&driver).contains("rescanned"),
            "no rescan was needed"
        );
        assert!(
            mpath_maps().is_empty(),
            "one portal (--multipath auto): the disk itself, no multipath map"
        );
        teardown(&driver, &vol).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    /// Restores iscsid.conf when dropped, pass or fail.
    struct ConfRestore(String);

    const ISCSID_CONF: &str = "/etc/iscsi/iscsid.conf";

    impl Drop for ConfRestore {
        fn drop(&mut self) {
            std::fs::write(ISCSID_CONF, &self.0).expect("restore iscsid.conf");
        }
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn stage_rescans_a_session_logged_in_with_manual_scan() {
        let _timer =
            Timer::start("iscsi_paths::stage_rescans_a_session_logged_in_with_manual_scan");
        let lab = Lab::from_env();
        let original = std::fs::read_to_string(ISCSID_CONF).expect("iscsid.conf");
        let _restore = ConfRestore(original.clone());
        // The node record `-o new` creates takes its defaults from iscsid.conf.
        std::fs::write(
            ISCSID_CONF,
            format!("{original}\nnode.session.scan = manual\n"),
        )
        .expect("write iscsid.conf");
        let driver = Driver::start(&lab, options()).await;
        let vol = provision(
            &driver,
            "paths-manual-scan",
            block_capability(Mode::SingleNodeWriter),
        )
        .await;
        let took = stage_publish(&driver, &vol).await;
        let log = node_log(&driver);
        assert!(
            log.contains("rescanned it"),
            "the session had no disk until stage rescanned it:\n{log}"
        );
        assert!(
            took >= (DEVICE_TIMEOUT_S / 2) as f64 - 0.5 && took < DEVICE_TIMEOUT_S as f64 + 5.0,
            "half the device timeout, a rescan, then the disk: {took:.1} s"
        );
        let record = run_ok(
            "iscsiadm",
            &["-m", "node", "-T", vol.iqn(), "-p", &lab.portal],
        );
        assert!(
            record.contains("node.session.scan = manual"),
            "the scenario really ran with manual scan:\n{record}"
        );
        let sum = checksum::write_device(&vol.target, DATA_LEN, 62);
        assert_eq!(checksum::device_sha256(&vol.target, DATA_LEN), sum);
        teardown(&driver, &vol).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn stage_rescans_a_session_whose_disk_was_deleted_behind_its_back() {
        let _timer = Timer::start(
            "iscsi_paths::stage_rescans_a_session_whose_disk_was_deleted_behind_its_back",
        );
        let lab = Lab::from_env();
        let driver = Driver::start(&lab, options()).await;
        let vol = provision(
            &driver,
            "paths-deleted-disk",
            block_capability(Mode::SingleNodeWriter),
        )
        .await;
        // Someone logged in to the volume's target by hand (the plugin's own iface) and then
        // deleted its disk: the session stays, the disk is gone.
        let disk = login_by_hand(&lab, vol.iqn());
        std::fs::write(format!("/sys/block/{disk}/device/delete"), "1").expect("delete the disk");
        run_ok("udevadm", &["settle"]);
        let sessions = sessions_to(vol.iqn());
        assert!(
            sessions.len() == 1 && sessions[0].2.is_empty(),
            "a session without a disk: {sessions:?}"
        );
        let took = stage_publish(&driver, &vol).await;
        assert!(
            node_log(&driver).contains("rescanned it"),
            "stage rescanned the session:\n{}",
            node_log(&driver)
        );
        let sessions = sessions_to(vol.iqn());
        assert!(
            sessions.len() == 1 && sessions[0].2.len() == 1,
            "the same session, with its disk again: {sessions:?}"
        );
        eprintln!("stage with a rescan took {took:.1} s");
        let sum = checksum::write_device(&vol.target, DATA_LEN, 63);
        assert_eq!(checksum::device_sha256(&vol.target, DATA_LEN), sum);
        teardown(&driver, &vol).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    /// `iscsiadm -m node -T <iqn> -p <portal> ARGS` through the default iface (the plugin's).
    fn by_hand(lab: &Lab, iqn: &str, extra: &[&str]) -> String {
        let mut argv = vec!["-m", "node", "-T", iqn, "-p", &lab.portal];
        argv.extend_from_slice(extra);
        run_ok("iscsiadm", &argv)
    }

    /// Logs in to `iqn` by hand and waits for its disk; answers the disk's name.
    fn login_by_hand(lab: &Lab, iqn: &str) -> String {
        by_hand(lab, iqn, &["-o", "new"]);
        by_hand(lab, iqn, &["--login"]);
        let disk = (0..100)
            .find_map(|_| {
                let found = sessions_to(iqn).first().and_then(|s| s.2.first().cloned());
                if found.is_none() {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                found
            })
            .expect("the hand-made session's disk");
        run_ok("udevadm", &["settle"]);
        disk
    }

    fn has_record(iqn: &str) -> bool {
        std::path::Path::new("/etc/iscsi/nodes").join(iqn).exists()
    }

    /// Waits up to `secs` for `done`.
    async fn eventually(secs: u64, mut done: impl FnMut() -> bool) -> bool {
        for _ in 0..secs * 4 {
            if done() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        done()
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn the_start_up_sweep_removes_stale_sessions_and_records_but_never_a_staged_volume() {
        let _timer = Timer::start(
            "iscsi_paths::the_start_up_sweep_removes_stale_sessions_and_records_but_never_a_staged_volume",
        );
        let lab = Lab::from_env();
        // No periodic sweep during the test: only the one at start-up.
        let mut driver = Driver::start(
            &lab,
            DriverOptions {
                node_args: vec!["--upkeep-interval".into(), "3600".into()],
                ..DriverOptions::default()
            },
        )
        .await;
        let staged = provision(
            &driver,
            "paths-upkeep-staged",
            block_capability(Mode::SingleNodeWriter),
        )
        .await;
        stage_publish(&driver, &staged).await;
        let sum = checksum::write_device(&staged.target, DATA_LEN, 64);
        // A crash between a login and its record: a session (and node record) nobody owns.
        let stale = provision(
            &driver,
            "paths-upkeep-stale",
            block_capability(Mode::SingleNodeWriter),
        )
        .await;
        login_by_hand(&lab, stale.iqn());
        // A node record left without its session.
        let orphan = provision(
            &driver,
            "paths-upkeep-orphan",
            block_capability(Mode::SingleNodeWriter),
        )
        .await;
        by_hand(&lab, orphan.iqn(), &["-o", "new"]);
        assert!(has_record(orphan.iqn()) && has_record(stale.iqn()));

        driver.restart_node().await;
        // The sweep ran before the endpoint answered: no waiting here.
        assert!(
            sessions_to(stale.iqn()).is_empty(),
            "stale session removed at start-up"
        );
        assert!(!has_record(stale.iqn()), "its node record too");
        assert!(!has_record(orphan.iqn()), "the orphan node record removed");
        assert_eq!(
            sessions_to(staged.iqn()).len(),
            1,
            "the staged volume's session stays"
        );
        assert!(has_record(staged.iqn()), "and its record");
        let log = node_log(&driver);
        assert!(log.contains("logged out a stale iSCSI session"), "{log}");
        assert!(
            log.contains("deleted a stale iscsiadm node record"),
            "{log}"
        );
        assert_eq!(checksum::device_sha256(&staged.target, DATA_LEN), sum);
        teardown(&driver, &staged).await;
        for vol in [&stale, &orphan] {
            retire_unstaged(&driver, vol).await;
        }
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn the_upkeep_loop_leaves_a_mounted_stale_disk_and_removes_it_once_unmounted() {
        let _timer = Timer::start(
            "iscsi_paths::the_upkeep_loop_leaves_a_mounted_stale_disk_and_removes_it_once_unmounted",
        );
        let lab = Lab::from_env();
        // Set the scene with the upkeep off (a sweep must not win the race between the login
        // and the mount), then run a node whose loop sweeps every 2 s.
        let setup = Driver::start(&lab, options()).await;
        let vol = provision(
            &setup,
            "paths-upkeep-mounted",
            block_capability(Mode::SingleNodeWriter),
        )
        .await;
        let disk = login_by_hand(&lab, vol.iqn());
        let dev = format!("/dev/{disk}");
        run_ok("mkfs.ext4", &["-q", "-F", &dev]);
        let scratch = tempfile::Builder::new()
            .prefix("carve-by-hand-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let point = scratch.path().to_path_buf();
        run_ok("mount", &[&dev, &point.to_string_lossy()]);
        let sum = checksum::write_file(&point.join("data.bin"), DATA_LEN, 65);
        drop(setup);
        let driver = Driver::start(
            &lab,
            DriverOptions {
                node_args: vec!["--upkeep-interval".into(), "2".into()],
                ..DriverOptions::default()
            },
        )
        .await;
        let warned = eventually(20, || node_log(&driver).contains("is in use; leaving it")).await;
        assert!(
            warned,
            "a sweep saw the stale session in use:\n{}",
            node_log(&driver)
        );
        assert_eq!(
            sessions_to(vol.iqn()).len(),
            1,
            "a mounted disk's session is never removed"
        );
        assert_eq!(checksum::file_sha256(&point.join("data.bin")), sum);
        run_ok("umount", &[&point.to_string_lossy()]);
        let gone = eventually(20, || {
            sessions_to(vol.iqn()).is_empty() && !has_record(vol.iqn())
        })
        .await;
        assert!(
            gone,
            "removed within a few intervals once unmounted:\n{}",
            node_log(&driver)
        );
        assert!(node_log(&driver).contains("logged out a stale iSCSI session"));
        retire_unstaged(&driver, &vol).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    /// The second loopback portal (all of 127.0.0.0/8 is local on Linux).
    const SECOND: &str = "127.0.0.2:3260";

    /// `(dm name, WWID, sorted path disks)` of every dm-multipath map, from sysfs.
    fn mpath_maps() -> Vec<(String, String, Vec<String>)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/sys/class/block")
            .into_iter()
            .flatten()
            .flatten()
        {
            let dm = entry.file_name().to_string_lossy().into_owned();
            let uuid = std::fs::read_to_string(entry.path().join("dm/uuid")).unwrap_or_default();
            let Some(wwid) = uuid.trim().strip_prefix("mpath-") else {
                continue;
            };
            let mut slaves: Vec<String> = std::fs::read_dir(entry.path().join("slaves"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            slaves.sort();
            out.push((dm, wwid.to_string(), slaves));
        }
        out
    }

    /// The kernel state of the session to `iqn` through `address` (`persistent_address`).
    fn session_state(iqn: &str, address: &str) -> Option<String> {
        let (sid, ..) = sessions_to(iqn).into_iter().find(|s| s.1 == address)?;
        std::fs::read_to_string(format!("/sys/class/iscsi_session/{sid}/state"))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// multipathd's view of every path: `"<disk> <dm state> <checker state>"`.
    fn mpath_paths() -> String {
        run_ok(
            "multipathd",
            &["show", "paths", "raw", "format", "%d %t %T"],
        )
    }

    /// NodeGetVolumeStats' condition of `vol` at its target path: `(abnormal, message)`.
    async fn condition(driver: &Driver, vol: &Vol) -> (bool, String) {
        let mut node = driver.node.node.clone();
        let c = node
            .node_get_volume_stats(NodeGetVolumeStatsRequest {
                volume_id: vol.id.clone(),
                volume_path: vol.target.display().to_string(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("NodeGetVolumeStats: {s:?}\n{}", driver.logs()))
            .into_inner()
            .volume_condition
            .expect("condition");
        (c.abnormal, c.message)
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn multipath_over_two_portals_rides_out_a_lost_portal_and_heals_a_logged_out_path() {
        let _timer = Timer::start(
            "iscsi_paths::multipath_over_two_portals_rides_out_a_lost_portal_and_heals_a_logged_out_path",
        );
        let lab = Lab::from_env();
        let driver = Driver::start(
            &lab,
            DriverOptions {
                controller_args: vec!["--portal".into(), SECOND.into()],
                node_args: vec![
                    "--upkeep-interval".into(),
                    "2".into(),
                    "--device-timeout".into(),
                    "20".into(),
                ],
                ..DriverOptions::default()
            },
        )
        .await;
        let vol = provision(
            &driver,
            "paths-multipath",
            mount_capability(Mode::SingleNodeWriter, "ext4", &[], ""),
        )
        .await;
        let portals = vol.publish["portals"].clone();
        assert!(
            portals.split(',').any(|p| p == SECOND) && portals.split(',').count() == 2,
            "the controller exports both portals: {portals}"
        );
        let took = stage_publish(&driver, &vol).await;
        eprintln!("multipath stage over {portals} took {took:.1} s");

        // Two sessions, one map of both disks, mounted through the map by WWID.
        let sessions = sessions_to(vol.iqn());
        let mut addresses: Vec<&str> = sessions.iter().map(|s| s.1.as_str()).collect();
        addresses.sort();
        assert_eq!(addresses, ["127.0.0.1", "127.0.0.2"], "{sessions:?}");
        let mut disks: Vec<String> = sessions.iter().flat_map(|s| s.2.clone()).collect();
        disks.sort();
        assert_eq!(disks.len(), 2, "{sessions:?}");
        let maps = mpath_maps();
        assert_eq!(maps.len(), 1, "{maps:?}");
        let (dm, wwid, slaves) = maps[0].clone();
        assert_eq!(slaves, disks, "the map holds both paths");
        let naa = std::fs::read_to_string(format!("/sys/block/{}/device/wwid", disks[0])).unwrap();
        assert_eq!(format!("3{}", naa.trim().trim_start_matches("naa.")), wwid);
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let staging = vol.staging.display().to_string();
        let line = mountinfo
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(staging.as_str()))
            .expect("the staging mount");
        let dev = std::fs::read_to_string(format!("/sys/class/block/{dm}/dev")).unwrap();
        assert_eq!(
            line.split(' ').nth(2),
            Some(dev.trim()),
            "mounted from the map: {line}"
        );
        assert!(
            line.contains(&format!(" /dev/disk/by-id/dm-uuid-mpath-{wwid} ")),
            "by WWID, never a kernel name: {line}"
        );
        let record =
            std::fs::read_to_string(driver.state_dir().join(format!("{}.json", vol.id))).unwrap();
        assert!(
            record.contains(SECOND) && record.contains(&wwid),
            "the stage record keeps every portal and the map: {record}"
        );
        let a = checksum::write_file(&vol.target.join("a.bin"), DATA_LEN, 71);
        run_ok("sync", &[]);

        // The target loses its second portal: the listener goes, the live connection is cut.
        let np = format!(
            "/sys/kernel/config/target/iscsi/{}/tpgt_1/np/{SECOND}",
            vol.iqn()
        );
        std::fs::remove_dir(&np).unwrap_or_else(|e| panic!("rmdir {np}: {e}"));
        run_ok(
            "ss",
            &["-K", "-t", "dst", "127.0.0.2", "dport", "=", ":3260"],
        );
        run_ok(
            "ss",
            &["-K", "-t", "src", "127.0.0.2", "sport", "=", ":3260"],
        );
        let failed = eventually(30, || {
            session_state(vol.iqn(), "127.0.0.2").is_some_and(|s| s != "LOGGED_IN")
        })
        .await;
        assert!(
            failed,
            "the second path failed: {:?}",
            sessions_to(vol.iqn())
        );
        let t0 = Instant::now();
        let b = checksum::write_file(&vol.target.join("b.bin"), DATA_LEN, 72);
        run_ok("sync", &[]);
        eprintln!(
            "4 MiB written and synced with one portal gone in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        assert_eq!(checksum::file_sha256(&vol.target.join("a.bin")), a);
        let (abnormal, message) = condition(&driver, &vol).await;
        assert!(
            abnormal && message.contains(SECOND),
            "names the lost path: {message}"
        );

        // The portal comes back: iscsid reconnects, multipathd reinstates, nobody intervenes.
        let t0 = Instant::now();
        std::fs::create_dir(&np).unwrap_or_else(|e| panic!("mkdir {np}: {e}"));
        let back = eventually(60, || {
            session_state(vol.iqn(), "127.0.0.2").as_deref() == Some("LOGGED_IN")
                && mpath_paths()
                    .lines()
                    .filter(|l| l.contains("active ready"))
                    .count()
                    == 2
        })
        .await;
        assert!(
            back,
            "both paths active again:\n{}\n{}",
            mpath_paths(),
            node_log(&driver)
        );
        eprintln!("second path back after {:.1} s", t0.elapsed().as_secs_f64());
        let (abnormal, message) = condition(&driver, &vol).await;
        assert!(!abnormal, "healthy again: {message}");

        // A path logged out behind the plugin's back: the upkeep loop logs it in again and the
        // new disk goes back into the map.
        run_ok(
            "iscsiadm",
            &["-m", "node", "-T", vol.iqn(), "-p", SECOND, "--logout"],
        );
        assert_eq!(sessions_to(vol.iqn()).len(), 1);
        let t0 = Instant::now();
        let healed = eventually(30, || {
            sessions_to(vol.iqn()).len() == 2
                && mpath_maps().first().is_some_and(|m| m.2.len() == 2)
        })
        .await;
        assert!(
            healed,
            "self-heal:\n{}\n{}",
            mpath_paths(),
            node_log(&driver)
        );
        eprintln!(
            "logged-out path restored after {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        assert!(
            node_log(&driver).contains("logged in again"),
            "{}",
            node_log(&driver)
        );
        let c = checksum::write_file(&vol.target.join("c.bin"), DATA_LEN, 73);
        run_ok("sync", &[]);
        for (name, sum) in [("a.bin", &a), ("b.bin", &b), ("c.bin", &c)] {
            assert_eq!(
                &checksum::file_sha256(&vol.target.join(name)),
                sum,
                "{name}"
            );
        }
        teardown(&driver, &vol).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    /// ControllerUnpublish + DeleteVolume of a volume that was never staged.
    async fn retire_unstaged(driver: &Driver, vol: &Vol) {
        let mut controller = driver.controller.controller.clone();
        controller
            .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
                volume_id: vol.id.clone(),
                node_id: driver.lab.initiator.clone(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("ControllerUnpublish: {s:?}\n{}", driver.logs()));
        controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: vol.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("DeleteVolume: {s:?}\n{}", driver.logs()));
    }
}
