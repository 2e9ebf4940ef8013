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
        Driver, DriverOptions, Lab, Timer, assert_no_leaks, checksum, eventually, guest_test,
        guest_test_mut,
        iscsi::{
            IscsidConf, MpathMap, by_hand, has_record, login_by_hand, mpath_maps, mpath_paths,
            session_state, sessions_to,
        },
        run_ok, scenario_with,
        volume::{
            MIB, Spec, Vol, block, condition, ext4, provision, retire, stage_publish, teardown,
        },
    };
    use csi_proto::v1::{NodeGetVolumeStatsRequest, VolumeCapability};
    use std::time::Instant;

    const DATA_LEN: usize = 4 * 1024 * 1024;
    /// The node's `--device-timeout` here: a rescan happens after half of it.
    const DEVICE_TIMEOUT_S: u64 = 10;

    /// NodeStage + NodePublish; how many seconds NodeStage took.
    async fn stage_secs(driver: &Driver, vol: &Vol) -> f64 {
        stage_publish(driver, &driver.node, vol).await.as_secs_f64()
    }

    /// A thin volume of 32 MiB, created and published to this node.
    async fn thin_volume(driver: &Driver, name: &str, cap: &VolumeCapability) -> Vol {
        provision(driver, Spec::new(name, 32 * MIB, cap.clone())).await
    }

    /// NodeGetVolumeStats' condition of `vol` at its target path (no staging path given):
    /// `(abnormal, message)`.
    async fn target_condition(driver: &Driver, vol: &Vol) -> (bool, String) {
        let req = NodeGetVolumeStatsRequest {
            staging_target_path: String::new(),
            ..vol.stats(&vol.target)
        };
        condition(driver, req).await
    }

    /// The node with a short device timeout and no upkeep sweeps (a scenario's own hand-made
    /// session must not be swept away).
    fn options() -> DriverOptions {
        DriverOptions::default().node([
            "--device-timeout".into(),
            DEVICE_TIMEOUT_S.to_string(),
            "--upkeep-interval".into(),
            "0".into(),
        ])
    }

    guest_test!(
        an_ipv6_portal_logs_in_finds_its_disk_and_carries_data,
        options().controller(["--portal", "[::1]:3260"]),
        async |driver| {
            let mut vol = thin_volume(driver, "paths-ipv6", &ext4()).await;
            let portals = vol.publish["portals"].clone();
            assert!(
                portals.split(',').any(|p| p == "[::1]:3260"),
                "the controller exports the IPv6 portal: {portals}"
            );
            // What a controller configured with only the IPv6 portal publishes.
            vol.publish.insert("portals".into(), "[::1]:3260".into());
            let took = stage_secs(driver, &vol).await;
            eprintln!("stage through [::1]:3260 took {took:.1} s");
            let sessions = sessions_to(vol.target_iqn());
            assert_eq!(sessions.len(), 1, "{sessions:?}");
            assert_eq!(
                sessions[0].address, "::1",
                "the session runs over IPv6: {sessions:?}"
            );
            let by_path = format!(
                "/dev/disk/by-path/ip-::1:3260-iscsi-{}-lun-0",
                vol.target_iqn()
            );
            let disk = std::fs::canonicalize(&by_path).unwrap_or_else(|e| panic!("{by_path}: {e}"));
            assert_eq!(
                disk.file_name().unwrap().to_string_lossy(),
                sessions[0].disks[0],
                "udev's by-path name (no brackets) is the session's disk"
            );
            let sum = checksum::write_file(&vol.target.join("data.bin"), DATA_LEN, 61);
            run_ok("sync", &[]);
            assert_eq!(checksum::file_sha256(&vol.target.join("data.bin")), sum);
            assert!(
                !driver.node_log().contains("rescanned"),
                "no rescan was needed"
            );
            assert!(
                mpath_maps().is_empty(),
                "one portal (--multipath auto): the disk itself, no multipath map"
            );
            teardown(driver, &vol).await;
        }
    );

    guest_test!(stage_rescans_a_session_logged_in_with_manual_scan, async {
        let name = "iscsi_paths::stage_rescans_a_session_logged_in_with_manual_scan";
        // The node record `-o new` creates takes its defaults from iscsid.conf.
        let _restore = IscsidConf::append("node.session.scan = manual");
        scenario_with(name, options(), async |driver| {
            let lab = &driver.lab;
            let vol = thin_volume(driver, "paths-manual-scan", &block()).await;
            let took = stage_secs(driver, &vol).await;
            let log = driver.node_log();
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
                &["-m", "node", "-T", vol.target_iqn(), "-p", &lab.portal],
            );
            assert!(
                record.contains("node.session.scan = manual"),
                "the scenario really ran with manual scan:\n{record}"
            );
            let sum = checksum::write_device(&vol.target, DATA_LEN, 62);
            assert_eq!(checksum::device_sha256(&vol.target, DATA_LEN), sum);
            teardown(driver, &vol).await;
        })
        .await;
    });

    guest_test!(
        stage_rescans_a_session_whose_disk_was_deleted_behind_its_back,
        options(),
        async |driver| {
            let lab = &driver.lab;
            let vol = thin_volume(driver, "paths-deleted-disk", &block()).await;
            // Someone logged in to the volume's target by hand (the plugin's own iface) and then
            // deleted its disk: the session stays, the disk is gone.
            let disk = login_by_hand(lab, vol.target_iqn());
            std::fs::write(format!("/sys/block/{disk}/device/delete"), "1")
                .expect("delete the disk");
            run_ok("udevadm", &["settle"]);
            let sessions = sessions_to(vol.target_iqn());
            assert!(
                sessions.len() == 1 && sessions[0].disks.is_empty(),
                "a session without a disk: {sessions:?}"
            );
            let took = stage_secs(driver, &vol).await;
            assert!(
                driver.node_log().contains("rescanned it"),
                "stage rescanned the session:\n{}",
                driver.node_log()
            );
            let sessions = sessions_to(vol.target_iqn());
            assert!(
                sessions.len() == 1 && sessions[0].disks.len() == 1,
                "the same session, with its disk again: {sessions:?}"
            );
            eprintln!("stage with a rescan took {took:.1} s");
            let sum = checksum::write_device(&vol.target, DATA_LEN, 63);
            assert_eq!(checksum::device_sha256(&vol.target, DATA_LEN), sum);
            teardown(driver, &vol).await;
        }
    );

    guest_test_mut!(
        the_start_up_sweep_removes_stale_sessions_and_records_but_never_a_staged_volume,
        // No periodic sweep during the test: only the one at start-up.
        DriverOptions::default().node(["--upkeep-interval", "3600"]),
        async |driver| {
            let staged = thin_volume(driver, "paths-upkeep-staged", &block()).await;
            stage_publish(driver, &driver.node, &staged).await;
            let sum = checksum::write_device(&staged.target, DATA_LEN, 64);
            // A crash between a login and its record: a session (and node record) nobody owns.
            let stale = thin_volume(driver, "paths-upkeep-stale", &block()).await;
            login_by_hand(&driver.lab, stale.target_iqn());
            // A node record left without its session.
            let orphan = thin_volume(driver, "paths-upkeep-orphan", &block()).await;
            by_hand(&driver.lab, orphan.target_iqn(), &["-o", "new"]);
            assert!(has_record(orphan.target_iqn()) && has_record(stale.target_iqn()));

            driver.restart_node().await;
            // The sweep ran before the endpoint answered: no waiting here.
            assert!(
                sessions_to(stale.target_iqn()).is_empty(),
                "stale session removed at start-up"
            );
            assert!(!has_record(stale.target_iqn()), "its node record too");
            assert!(
                !has_record(orphan.target_iqn()),
                "the orphan node record removed"
            );
            assert_eq!(
                sessions_to(staged.target_iqn()).len(),
                1,
                "the staged volume's session stays"
            );
            assert!(has_record(staged.target_iqn()), "and its record");
            let log = driver.node_log();
            assert!(log.contains("logged out a stale iSCSI session"), "{log}");
            assert!(
                log.contains("deleted a stale iscsiadm node record"),
                "{log}"
            );
            assert_eq!(checksum::device_sha256(&staged.target, DATA_LEN), sum);
            teardown(driver, &staged).await;
            for vol in [&stale, &orphan] {
                retire(driver, vol, &driver.lab.initiator).await;
            }
        }
    );

    guest_test!(
        the_upkeep_loop_leaves_a_mounted_stale_disk_and_removes_it_once_unmounted,
        async {
            let _timer = Timer::start(
                "iscsi_paths::the_upkeep_loop_leaves_a_mounted_stale_disk_and_removes_it_once_unmounted",
            );
            let lab = Lab::from_env();
            // Set the scene with the upkeep off (a sweep must not win the race between the login
            // and the mount), then run a node whose loop sweeps every 2 s.
            let setup = Driver::start(&lab, options()).await;
            let vol = thin_volume(&setup, "paths-upkeep-mounted", &block()).await;
            let disk = login_by_hand(&lab, vol.target_iqn());
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
            let options = DriverOptions::default().node(["--upkeep-interval", "2"]);
            let driver = Driver::start(&lab, options).await;
            // Liveness waits, generous for TCG (a sweep every 2 s); what each took is printed.
            let t = std::time::Instant::now();
            let warned =
                eventually(60, || driver.node_log().contains("is in use; leaving it")).await;
            assert!(
                warned,
                "a sweep saw the stale session in use:\n{}",
                driver.node_log()
            );
            eprintln!("in-use warning after {:.1} s", t.elapsed().as_secs_f64());
            assert_eq!(
                sessions_to(vol.target_iqn()).len(),
                1,
                "a mounted disk's session is never removed"
            );
            assert_eq!(checksum::file_sha256(&point.join("data.bin")), sum);
            run_ok("umount", &[&point.to_string_lossy()]);
            let t = std::time::Instant::now();
            let gone = eventually(60, || {
                sessions_to(vol.target_iqn()).is_empty() && !has_record(vol.target_iqn())
            })
            .await;
            // The sweeps' own lines first: a failure's first lines are what CI's digest shows.
            let upkeep = || {
                let log = driver.node_log();
                let lines: Vec<&str> = log
                    .lines()
                    .filter(|l| l.contains("ops::upkeep") || l.contains("ops::detach"))
                    .collect();
                lines[lines.len().saturating_sub(6)..].join("\n")
            };
            assert!(
                gone,
                "removed by a later sweep once unmounted:\n{}",
                upkeep()
            );
            eprintln!(
                "removed {:.1} s after the unmount",
                t.elapsed().as_secs_f64()
            );
            // The sweep logs the removal after it deleted the node record: wait for the line
            // (checking it at once after the record was gone failed CI on 2026-12-01).
            let logged = eventually(10, || {
                driver
                    .node_log()
                    .contains("logged out a stale iSCSI session")
            })
            .await;
            assert!(logged, "the removal is logged:\n{}", upkeep());
            retire(&driver, &vol, &driver.lab.initiator).await;
            assert_no_leaks(&lab, Some(driver.dir.path()));
        }
    );

    /// The second loopback portal (all of 127.0.0.0/8 is local on Linux).
    const SECOND: &str = "127.0.0.2:3260";

    guest_test!(
        multipath_over_two_portals_rides_out_a_lost_portal_and_heals_a_logged_out_path,
        DriverOptions::default()
            .controller(["--portal", SECOND])
            .node(["--upkeep-interval", "2", "--device-timeout", "20"]),
        async |driver| {
            let vol = thin_volume(driver, "paths-multipath", &ext4()).await;
            let iqn = vol.target_iqn();
            let portals = vol.publish["portals"].clone();
            assert!(
                portals.split(',').any(|p| p == SECOND) && portals.split(',').count() == 2,
                "the controller exports both portals: {portals}"
            );
            let took = stage_secs(driver, &vol).await;
            eprintln!("multipath stage over {portals} took {took:.1} s");

            // Two sessions, one map of both disks, mounted through the map by WWID.
            let sessions = sessions_to(iqn);
            let mut addresses: Vec<&str> = sessions.iter().map(|s| s.address.as_str()).collect();
            addresses.sort_unstable();
            assert_eq!(addresses, ["127.0.0.1", "127.0.0.2"], "{sessions:?}");
            let mut disks: Vec<String> = sessions.iter().flat_map(|s| s.disks.clone()).collect();
            disks.sort();
            assert_eq!(disks.len(), 2, "{sessions:?}");
            let maps = mpath_maps();
            assert_eq!(maps.len(), 1, "{maps:?}");
            let MpathMap {
                dm,
                wwid,
                paths: slaves,
            } = maps[0].clone();
            assert_eq!(slaves, disks, "the map holds both paths");
            let naa =
                std::fs::read_to_string(format!("/sys/block/{}/device/wwid", disks[0])).unwrap();
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
                std::fs::read_to_string(driver.state_dir().join(format!("{}.json", vol.id)))
                    .unwrap();
            assert!(
                record.contains(SECOND) && record.contains(&wwid),
                "the stage record keeps every portal and the map: {record}"
            );
            let a = checksum::write_file(&vol.target.join("a.bin"), DATA_LEN, 71);
            run_ok("sync", &[]);

            // The target loses its second portal: the listener goes, the live connection is cut.
            let np = format!("/sys/kernel/config/target/iscsi/{iqn}/tpgt_1/np/{SECOND}");
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
                session_state(iqn, "127.0.0.2").is_some_and(|s| s != "LOGGED_IN")
            })
            .await;
            assert!(failed, "the second path failed: {:?}", sessions_to(iqn));
            let t0 = Instant::now();
            let b = checksum::write_file(&vol.target.join("b.bin"), DATA_LEN, 72);
            run_ok("sync", &[]);
            eprintln!(
                "4 MiB written and synced with one portal gone in {:.1} s",
                t0.elapsed().as_secs_f64()
            );
            assert_eq!(checksum::file_sha256(&vol.target.join("a.bin")), a);
            let (abnormal, message) = target_condition(driver, &vol).await;
            assert!(
                abnormal && message.contains(SECOND),
                "names the lost path: {message}"
            );

            // The portal comes back: iscsid reconnects, multipathd reinstates, nobody intervenes.
            let t0 = Instant::now();
            std::fs::create_dir(&np).unwrap_or_else(|e| panic!("mkdir {np}: {e}"));
            let back = eventually(60, || {
                session_state(iqn, "127.0.0.2").as_deref() == Some("LOGGED_IN")
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
                driver.node_log()
            );
            eprintln!("second path back after {:.1} s", t0.elapsed().as_secs_f64());
            let (abnormal, message) = target_condition(driver, &vol).await;
            assert!(!abnormal, "healthy again: {message}");

            // A path logged out behind the plugin's back: the upkeep loop logs it in again and the
            // new disk goes back into the map.
            run_ok(
                "iscsiadm",
                &["-m", "node", "-T", iqn, "-p", SECOND, "--logout"],
            );
            assert_eq!(sessions_to(iqn).len(), 1);
            let t0 = Instant::now();
            let healed = eventually(30, || {
                sessions_to(iqn).len() == 2
                    && mpath_maps().first().is_some_and(|m| m.paths.len() == 2)
            })
            .await;
            assert!(
                healed,
                "self-heal:\n{}\n{}",
                mpath_paths(),
                driver.node_log()
            );
            eprintln!(
                "logged-out path restored after {:.1} s",
                t0.elapsed().as_secs_f64()
            );
            // The heal writes its line after the path is visible: wait for it too.
            let logged = eventually(10, || driver.node_log().contains("logged in again")).await;
            assert!(logged, "the heal is logged:\n{}", driver.node_log());
            let c = checksum::write_file(&vol.target.join("c.bin"), DATA_LEN, 73);
            run_ok("sync", &[]);
            for (name, sum) in [("a.bin", &a), ("b.bin", &b), ("c.bin", &c)] {
                assert_eq!(
                    &checksum::file_sha256(&vol.target.join(name)),
                    sum,
                    "{name}"
                );
            }
            teardown(driver, &vol).await;
        }
    );
}
