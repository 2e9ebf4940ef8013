//! Guest tier, node plugin: what NodeStage refuses (a filesystem of another type, a partition
//! table, the wrong disk, an initiator outside the ACL, a wrong CHAP secret) and that it leaves
//! the data and the machine as they were; CHAP from ControllerPublish secrets; a plugin restart
//! between stage and unstage; NodeGetVolumeStats (mount, block, a session killed behind the
//! plugin's back). Volumes come from the real controller (CreateVolume + ControllerPublish);
//! every scenario ends with leak accounting. Expansion and clones seen from the node are in
//! node_growth.rs.

mod node_plugin {
    use carve_guest_tests::{
        Driver, DriverOptions, Lab, checksum, guest_test, guest_test_mut, host::mount_at, run,
        run_ok, second_node::SecondNode, storage::*, volume::*,
    };
    use carvectl::Client;
    use csi_proto::v1::{NodeGetInfoRequest, NodeStageVolumeRequest, volume_usage::Unit};
    use std::{collections::HashMap, io::Write, path::PathBuf};
    use tonic::Code;

    /// Stages with `cap` and expects `code`; then nothing may be attached, recorded or mounted.
    async fn stage_refused(
        driver: &Driver,
        node: &Client,
        req: NodeStageVolumeRequest,
        code: Code,
        why: &str,
    ) {
        let staging = PathBuf::from(&req.staging_target_path);
        let status = node
            .node
            .clone()
            .node_stage_volume(req)
            .await
            .expect_err("NodeStage must be refused");
        assert_eq!(status.code(), code, "{status:?}\n{}", driver.logs());
        assert!(
            status.message().contains(why),
            "the refusal says why ({why:?}): {}",
            status.message()
        );
        assert_nothing_attached(&driver.lab);
        assert!(
            mount_at(&staging).is_none(),
            "{} is not mounted",
            staging.display()
        );
    }

    /// No iSCSI session and no iscsiadm node record: a refused stage rolled its login back.
    fn assert_nothing_attached(lab: &Lab) {
        let left: Vec<String> = carve_guest_tests::leaks::leaks(lab, None)
            .into_iter()
            .filter(|l| l.starts_with("iSCSI session") || l.starts_with("iscsiadm node record"))
            .collect();
        assert!(left.is_empty(), "left attached: {left:?}");
    }

    // ---------------------------------------------------------------------------------------
    // Never reformat, never the wrong disk

    guest_test!(
        a_filesystem_of_another_type_is_never_reformatted,
        async |driver| {
            let (vol, written) =
                provision_with_data(driver, Spec::new("node-otherfs", 320 * MIB, xfs()), 11).await;
            unpublish_unstage(driver, &driver.node, &vol).await;

            stage_refused(
                driver,
                &driver.node,
                vol.stage_as(&ext4()),
                Code::FailedPrecondition,
                "already holds xfs",
            )
            .await;
            assert_eq!(blkid(&vol.lv, "TYPE"), "xfs", "still XFS on the LV");

            stage_publish(driver, &driver.node, &vol).await;
            assert_eq!(
                checksum::file_sha256(&vol.target.join("data.bin")),
                written,
                "the data survived the refused stage"
            );
            teardown(driver, &vol).await;
        }
    );

    /// A DOS label with one Linux partition from sector 2048 to the end, then a pattern.
    fn partitioned_image(sectors: u32) -> Vec<u8> {
        let mut image: Vec<u8> = (0..MIB_LEN)
            .map(|i| u8::try_from(i * 31 % 251).unwrap())
            .collect();
        image[..512].fill(0);
        let entry = &mut image[446..462];
        entry[4] = 0x83;
        entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
        entry[12..16].copy_from_slice(&(sectors - 2048).to_le_bytes());
        image[510] = 0x55;
        image[511] = 0xaa;
        image
    }

    guest_test!(a_partition_table_is_never_formatted, async |driver| {
        // Written through the CO path: stage and publish as block, write the label through
        // the pod's device file, unstage.
        let vol = provision(driver, Spec::new("node-parts", 32 * MIB, block())).await;
        stage_publish(driver, &driver.node, &vol).await;
        let image = partitioned_image(u32::try_from(vol.capacity / 512).unwrap());
        {
            let mut dev = std::fs::OpenOptions::new()
                .write(true)
                .open(&vol.target)
                .expect("open the published device");
            dev.write_all(&image).expect("write the label");
            dev.sync_all().expect("fsync");
        }
        unpublish_unstage(driver, &driver.node, &vol).await;
        assert_eq!(blkid(&vol.lv, "PTTYPE"), "dos", "the LV holds the label");

        for cap in [ext4(), xfs()] {
            stage_refused(
                driver,
                &driver.node,
                vol.stage_as(&cap),
                Code::FailedPrecondition,
                "partition table",
            )
            .await;
        }
        assert_eq!(
            checksum::device_sha256(&vol.lv, image.len()),
            checksum::sha256(&image),
            "the label and the bytes after it are unchanged"
        );
        retire(driver, &vol, &driver.lab.initiator).await;
    });

    guest_test!(
        a_disk_with_another_serial_is_refused_before_any_write,
        async |driver| {
            let vol = provision(driver, Spec::new("node-serial", 32 * MIB, ext4())).await;
            let mut req = vol.stage();
            req.publish_context.insert(
                "serial".into(),
                "5a0c1e00-0000-4000-8000-000000000bad".into(),
            );
            stage_refused(
                driver,
                &driver.node,
                req,
                Code::FailedPrecondition,
                "serial",
            )
            .await;
            let probe = run("blkid", &["-p", &vol.lv.to_string_lossy()]);
            assert_eq!(
                probe.status.code(),
                Some(2),
                "nothing was written: the LV still has no signature"
            );
            retire(driver, &vol, &driver.lab.initiator).await;
        }
    );

    // ---------------------------------------------------------------------------------------
    // Who may log in

    guest_test!(an_initiator_without_the_acl_cannot_log_in, async |driver| {
        let lab = &driver.lab;
        let node2 = SecondNode::start(driver).await;
        let info = node2
            .client()
            .node
            .clone()
            .node_get_info(NodeGetInfoRequest {})
            .await
            .expect("NodeGetInfo")
            .into_inner();
        assert_eq!(info.node_id, lab.initiator2);

        let mut vol = provision(driver, Spec::new("node-acl", 32 * MIB, ext4())).await;
        vol.staging = driver.staging_path("node2-acl");
        stage_refused(
            driver,
            node2.client(),
            vol.stage(),
            Code::FailedPrecondition,
            "authorization failure",
        )
        .await;
        assert!(
            node2.stage_records().is_empty(),
            "no stage record left: {:?}",
            node2.stage_records()
        );

        // Once the ACL allows it, the same identity logs in: the refusal was the ACL's.
        controller_unpublish(driver, &vol, &lab.initiator).await;
        vol.publish = controller_publish(driver, &vol, &lab.initiator2, HashMap::new()).await;
        let mut node = node2.client().node.clone();
        node.node_stage_volume(vol.stage())
            .await
            .unwrap_or_else(|s| panic!("NodeStage on node2: {s:?}\n{}", driver.logs()));
        let ifaces: Vec<String> = std::fs::read_dir("/sys/class/iscsi_session")
            .unwrap()
            .flatten()
            .map(|s| {
                std::fs::read_to_string(s.path().join("ifacename"))
                    .unwrap()
                    .trim()
                    .to_string()
            })
            .collect();
        assert_eq!(
            ifaces,
            std::slice::from_ref(&lab.iface2),
            "one session, through node2's iface"
        );
        node.node_unstage_volume(vol.unstage())
            .await
            .unwrap_or_else(|s| panic!("NodeUnstage on node2: {s:?}\n{}", driver.logs()));
        controller_unpublish(driver, &vol, &lab.initiator2).await;
        drop(node);
        node2.stop().await;
        delete_volume(driver, &vol.id).await;
    });

    guest_test!(
        chap_from_controller_publish_secrets_logs_in_and_a_wrong_secret_is_refused,
        async |driver| {
            let (user, password, wrong) =
                ("node1user", "node1-secret-pw-0419", "wrong-secret-pw-0419");
            let secrets = |password: &str| {
                HashMap::from([
                    ("chapUsername".to_string(), user.to_string()),
                    ("chapPassword".to_string(), password.to_string()),
                ])
            };
            let mut vol = create(driver, &Spec::new("node-chap", 32 * MIB, ext4()))
                .await
                .expect("CreateVolume");
            vol.publish =
                controller_publish(driver, &vol, &driver.lab.initiator, secrets(password)).await;
            assert!(
                vol.publish.values().all(|v| !v.contains(password)),
                "no secret in publish_context"
            );

            let mut req = vol.stage();
            req.secrets = secrets(wrong);
            stage_refused(
                driver,
                &driver.node,
                req,
                Code::FailedPrecondition,
                "authorization failure",
            )
            .await;
            stage_refused(
                driver,
                &driver.node,
                vol.stage(),
                Code::FailedPrecondition,
                "authorization failure",
            )
            .await;

            let mut node = driver.node_rpc();
            let mut req = vol.stage();
            req.secrets = secrets(password);
            node.node_stage_volume(req)
                .await
                .unwrap_or_else(|s| panic!("NodeStage with CHAP: {s:?}\n{}", driver.logs()));
            node.node_publish_volume(vol.publish())
                .await
                .expect("NodePublish");
            let written = checksum::write_file(&vol.target.join("data.bin"), DATA_LEN, 5);
            assert_eq!(checksum::file_sha256(&vol.target.join("data.bin")), written);
            unpublish_unstage(driver, &driver.node, &vol).await;
            let log = driver.node_log();
            assert!(
                !log.contains(password) && !log.contains(wrong),
                "a CHAP secret reached the node log"
            );
            retire(driver, &vol, &driver.lab.initiator).await;
        }
    );

    // ---------------------------------------------------------------------------------------
    // Restart, stats, condition

    guest_test_mut!(
        a_plugin_restart_between_stage_and_unstage_still_unstages,
        DriverOptions::default(),
        async |driver| {
            let (vol, written) =
                provision_with_data(driver, Spec::new("node-restart", 64 * MIB, ext4()), 3).await;

            driver.restart_node().await;
            let after = stats(driver, vol.stats(&vol.target)).await;
            let condition = after.volume_condition.expect("condition");
            assert!(!condition.abnormal, "{condition:?}");
            assert_eq!(checksum::file_sha256(&vol.target.join("data.bin")), written);
            unpublish_unstage(driver, &driver.node, &vol).await;
            assert_nothing_attached(&driver.lab);
            retire(driver, &vol, &driver.lab.initiator).await;
        }
    );

    /// Bytes NodeStage's probe reads from each new disk: the regions blkid probes, 8 MiB at the
    /// start and 2 MiB at the end (csi-node `filesystem::probe::PROBED_HEAD` and `PROBED_TAIL`).
    const PROBED_BYTES: u64 = 10 * MIB as u64;

    guest_test!(
        a_new_volume_s_disk_is_read_once_by_the_probe,
        async |driver| {
            // The kernel drops a disk's page cache when its last opener closes it; the probe's
            // passes (a read before blkid, blkid, a read after it, the read check) must share
            // one read of the disk, not go over iSCSI once each. Counted by the kernel: the
            // sectors read from the disk while it was staged (udev, the probe, mkfs, mount).
            let vol = provision(driver, Spec::new("node-probe-reads", 64 * MIB, ext4())).await;
            stage_publish(driver, &driver.node, &vol).await;
            let disk = driver.staged_disk(&vol.id);
            let stat = std::fs::read_to_string(format!("/sys/class/block/{disk}/stat"))
                .expect("disk stat");
            let sectors: u64 = stat
                .split_whitespace()
                .nth(2)
                .and_then(|f| f.parse().ok())
                .expect("sectors read (block/stat field 3)");
            let read = sectors * 512;
            assert!(
                (PROBED_BYTES..PROBED_BYTES * 3 / 2).contains(&read),
                "{read} bytes read from {disk} while staging: the probed regions \
                 ({PROBED_BYTES} bytes) once, not once per pass"
            );
            teardown(driver, &vol).await;
        }
    );

    guest_test!(
        volume_stats_for_mount_and_block_and_abnormal_after_a_logout_behind_its_back,
        async |driver| {
            let fs = provision(driver, Spec::new("node-stats-fs", 64 * MIB, ext4())).await;
            stage_publish(driver, &driver.node, &fs).await;
            let before = stats(driver, fs.stats(&fs.target)).await;
            let (total, used, available) = usage(&before, Unit::Bytes);
            assert!(
                total > 48 * MIB && total <= fs.capacity && used + available <= total,
                "bytes of a 64 MiB ext4: {before:?}"
            );
            let (inodes, _, free_inodes) = usage(&before, Unit::Inodes);
            assert!(inodes > 0 && free_inodes > 0 && free_inodes < inodes);
            checksum::write_file(&fs.target.join("data.bin"), DATA_LEN, 9);
            let after = stats(driver, fs.stats(&fs.staging)).await;
            let (_, used_after, _) = usage(&after, Unit::Bytes);
            assert!(
                used_after - used >= i64::try_from(DATA_LEN).unwrap(),
                "used grew by the file: {used} -> {used_after}"
            );
            assert!(!after.volume_condition.expect("condition").abnormal);
            unpublish_unstage(driver, &driver.node, &fs).await;

            let dev = provision(driver, Spec::new("node-stats-block", 32 * MIB, block())).await;
            stage_publish(driver, &driver.node, &dev).await;
            let healthy = stats(driver, dev.stats(&dev.target)).await;
            assert_eq!(usage(&healthy, Unit::Bytes).0, dev.capacity);
            assert!(!healthy.volume_condition.expect("condition").abnormal);

            // Kill the session behind the plugin's back.
            run_ok(
                "iscsiadm",
                &[
                    "-m",
                    "node",
                    "-T",
                    dev.target_iqn(),
                    "-p",
                    &driver.lab.portal,
                    "--logout",
                ],
            );
            let sick = stats(driver, dev.stats(&dev.target))
                .await
                .volume_condition
                .expect("condition");
            assert!(
                sick.abnormal && sick.message.contains("no iSCSI session"),
                "{sick:?}"
            );
            // The CO's teardown still completes and leaves nothing.
            unpublish_unstage(driver, &driver.node, &dev).await;
            retire(driver, &fs, &driver.lab.initiator).await;
            retire(driver, &dev, &driver.lab.initiator).await;
        }
    );
}
