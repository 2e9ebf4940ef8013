//! Guest tier, data safety (issue 14), against the real binaries: a read-only attachment is
//! unwritable (the LUN write-protected through either LIO backend, ext4/xfs staged without
//! replay and left byte-identical; a read-only block publication refuses writes through its
//! device node); raw data is never formatted; unstage refuses while a holder or another mount
//! namespace uses the disk and changes nothing, and finishes when the target is gone; a
//! filesystem that went read-only or shut down is reported abnormal, not published, and still
//! unstages. Every scenario checks its data by checksum and ends with leak accounting.

mod safety {
    use carve_guest_tests::{
        Driver, DriverOptions, checksum, guest_test,
        host::{mount_at, sysfs, write_fails},
        iscsi::session_count,
        run_ok,
        storage::lv_sha256,
        volume::{
            MIB, MIB_LEN, Spec, Vol, block, condition, controller_publish_with,
            controller_unpublish, create as create_volume, delete_volume, node_publish, node_stage,
            node_unpublish, node_unstage, retire, try_publish, try_stage, try_unstage,
        },
    };
    use carvectl::request::mount_capability;
    use csi_proto::v1::{
        ControllerPublishVolumeRequest, VolumeCapability, volume_capability::access_mode::Mode,
    };
    use std::{path::Path, slice::from_ref, time::Duration};
    use tonic::{Code, Status};

    fn fs(fs_type: &str, flags: &[&str]) -> VolumeCapability {
        mount_capability(Mode::SingleNodeWriter, fs_type, flags, "")
    }

    /// CreateVolume of a thin volume for `caps`.
    async fn create(driver: &Driver, name: &str, size: i64, caps: &[VolumeCapability]) -> Vol {
        create_volume(driver, &Spec::new(name, size, caps[0].clone()).caps(caps))
            .await
            .unwrap_or_else(|s| panic!("CreateVolume: {s:?}\n{}", driver.logs()))
    }

    /// ControllerPublish to this node with `cap`, read-only or not (the answer says which).
    async fn attach(driver: &Driver, vol: &mut Vol, cap: &VolumeCapability, readonly: bool) {
        let req = ControllerPublishVolumeRequest {
            volume_id: vol.id.clone(),
            node_id: driver.lab.initiator.clone(),
            volume_capability: Some(cap.clone()),
            readonly,
            volume_context: vol.context.clone(),
            ..Default::default()
        };
        vol.publish = controller_publish_with(driver, req).await;
        assert_eq!(
            vol.publish["readonly"],
            readonly.to_string(),
            "{:?}",
            vol.publish
        );
    }

    /// CreateVolume for `cap`, attached read-write to this node and staged.
    async fn staged(driver: &Driver, name: &str, size: i64, cap: &VolumeCapability) -> Vol {
        let mut vol = create(driver, name, size, from_ref(cap)).await;
        attach(driver, &mut vol, cap, false).await;
        node_stage(driver, vol.stage_as(cap)).await;
        vol
    }

    fn ok(driver: &Driver, what: &str, r: Result<(), Status>) {
        if let Err(s) = r {
            panic!("{what}: {s:?}\n{}", driver.logs());
        }
    }

    /// NodeUnstage, which must succeed (`what` names it in the failure).
    async fn unstage_ok(driver: &Driver, vol: &Vol, what: &str) {
        ok(driver, what, try_unstage(driver, vol.unstage()).await);
    }

    fn refused(driver: &Driver, r: Result<(), Status>, code: Code, why: &str) {
        let s = r.expect_err("must be refused");
        assert_eq!(s.code(), code, "{s:?}\n{}", driver.logs());
        assert!(
            s.message().contains(why),
            "the refusal says {why:?}: {}",
            s.message()
        );
    }

    /// NodeStage of a read-only attachment, which must succeed; the disk it staged, checked
    /// write-protected.
    async fn stage_read_only(driver: &Driver, vol: &Vol, cap: &VolumeCapability) -> String {
        ok(
            driver,
            "read-only NodeStage",
            try_stage(driver, vol.stage_as(cap)).await,
        );
        let disk = driver.staged_disk(&vol.id);
        assert_eq!(
            sysfs(&format!("/sys/class/block/{disk}/ro")),
            "1",
            "LUN write-protected"
        );
        disk
    }

    // -------------------------------------------------------------------------------------
    // 1. Read-only end to end

    /// A filesystem volume written read-write, then attached read-only (readonly
    /// ControllerPublish): the disk is write-protected, the staging mount is `ro`, the data
    /// reads back, nothing can be written, and the LV is byte-identical afterwards (no journal
    /// replay, fsck or grow wrote to it).
    async fn readonly_filesystem(driver: &Driver, fs_type: &str, size: i64) {
        let lab = &driver.lab;
        let cap = fs(fs_type, &[]);
        let mut vol = create(driver, &format!("ro-{fs_type}"), size, from_ref(&cap)).await;
        attach(driver, &mut vol, &cap, false).await;
        assert_eq!(vol.publish["blank"], "true", "a new thin volume is blank");
        let target = driver.target_path(&format!("{}-rw", vol.id));
        node_stage(driver, vol.stage_as(&cap)).await;
        node_publish(driver, vol.publish_at(&cap, &target, false)).await;
        let written = checksum::write_file(&target.join("data.bin"), 4 << 20, 14);
        node_unpublish(driver, vol.unpublish_at(&target)).await;
        node_unstage(driver, vol.unstage()).await;
        controller_unpublish(driver, &vol, &driver.lab.initiator).await;
        let before = lv_sha256(lab, &vol.id);

        attach(driver, &mut vol, &cap, true).await;
        assert_eq!(vol.publish["blank"], "false", "it holds data now");
        stage_read_only(driver, &vol, &cap).await;
        let super_options = mount_at(&vol.staging).expect("staged").super_options;
        assert!(
            super_options.split(',').any(|o| o == "ro"),
            "{super_options}"
        );
        let target = driver.target_path(&format!("{}-ro", vol.id));
        node_publish(driver, vol.publish_at(&cap, &target, true)).await;
        assert_eq!(checksum::file_sha256(&target.join("data.bin")), written);
        assert!(
            std::fs::write(target.join("new"), b"x").is_err(),
            "no write through the pod"
        );
        assert!(
            std::fs::write(vol.staging.join("new"), b"x").is_err(),
            "nor the staging path"
        );
        node_unpublish(driver, vol.unpublish_at(&target)).await;
        unstage_ok(driver, &vol, "NodeUnstage ro").await;
        controller_unpublish(driver, &vol, &driver.lab.initiator).await;
        assert_eq!(lv_sha256(lab, &vol.id), before, "not a byte written");
        delete_volume(driver, &vol.id).await;
    }

    /// A block volume: a read-only NodePublish of a read-write attachment, then a read-only
    /// attachment; both refuse writes through the pod's device node and read the data back.
    async fn readonly_block(driver: &Driver) {
        let cap = block();
        let mut vol = staged(driver, "ro-block", 64 * MIB, &cap).await;
        let rw = driver.target_path(&format!("{}-rw", vol.id));
        node_publish(driver, vol.publish_at(&cap, &rw, false)).await;
        let written = checksum::write_device(&rw, MIB_LEN, 41);
        node_unpublish(driver, vol.unpublish_at(&rw)).await;
        let ro = driver.target_path(&format!("{}-ro", vol.id));
        node_publish(driver, vol.publish_at(&cap, &ro, true)).await;
        assert!(
            write_fails(&ro),
            "a read-only block publication must refuse writes"
        );
        assert_eq!(checksum::device_sha256(&ro, MIB_LEN), written);
        node_unpublish(driver, vol.unpublish_at(&ro)).await;
        assert!(!ro.exists(), "the device file publish made is gone");
        node_unstage(driver, vol.unstage()).await;
        controller_unpublish(driver, &vol, &driver.lab.initiator).await;

        attach(driver, &mut vol, &cap, true).await;
        let disk = stage_read_only(driver, &vol, &cap).await;
        node_publish(driver, vol.publish_at(&cap, &ro, true)).await;
        assert!(write_fails(&ro));
        assert!(
            write_fails(Path::new(&format!("/dev/{disk}"))),
            "nor through the disk"
        );
        assert_eq!(checksum::device_sha256(&ro, MIB_LEN), written);
        node_unpublish(driver, vol.unpublish_at(&ro)).await;
        node_unstage(driver, vol.unstage()).await;
        retire(driver, &vol, &driver.lab.initiator).await;
    }

    guest_test!(
        readonly_attachments_are_unwritable_through_configfs,
        async |driver| {
            readonly_filesystem(driver, "ext4", 64 * MIB).await;
            readonly_filesystem(driver, "xfs", 320 * MIB).await;
            readonly_block(driver).await;
        }
    );

    guest_test!(
        readonly_attachments_are_unwritable_through_targetcli,
        DriverOptions::default().backend("targetcli"),
        async |driver| {
            // The block path is backend-blind.
            readonly_filesystem(driver, "ext4", 64 * MIB).await;
        }
    );

    // -------------------------------------------------------------------------------------
    // 2-4. Never format data; teardown; filesystem health (one driver)

    async fn raw_data_is_never_formatted(driver: &Driver) {
        let lab = &driver.lab;
        let both = [block(), fs("ext4", &[])];
        let mut vol = create(driver, "raw", 64 * MIB, &both).await;
        attach(driver, &mut vol, &block(), false).await;
        node_stage(driver, vol.stage_as(&block())).await;
        let target = driver.target_path(&vol.id);
        ok(
            driver,
            "NodePublish",
            try_publish(driver, vol.publish_at(&block(), &target, false)).await,
        );
        let written = checksum::write_device(&target, 16 << 20, 16);
        node_unpublish(driver, vol.unpublish_at(&target)).await;
        node_unstage(driver, vol.unstage()).await;
        controller_unpublish(driver, &vol, &driver.lab.initiator).await;

        let ext4 = fs("ext4", &[]);
        attach(driver, &mut vol, &ext4, false).await;
        assert_eq!(vol.publish["blank"], "false", "{:?}", vol.publish);
        let r = try_stage(driver, vol.stage_as(&ext4)).await;
        refused(driver, r, Code::FailedPrecondition, "raw data");
        assert_eq!(session_count(), 0, "the refused stage logged out");
        assert!(mount_at(&vol.staging).is_none());
        assert_eq!(
            checksum::device_sha256(Path::new(&format!("/dev/{}/{}", lab.vg, vol.id)), 16 << 20),
            written,
            "the raw data survived"
        );
        retire(driver, &vol, &driver.lab.initiator).await;
    }

    async fn unstage_refuses_while_a_holder_uses_the_disk(driver: &Driver) {
        let vol = staged(driver, "held", 64 * MIB, &block()).await;
        let disk = driver.staged_disk(&vol.id);
        let sectors = sysfs(&format!("/sys/class/block/{disk}/size"));
        let table = format!("0 {sectors} linear /dev/{disk} 0");
        run_ok(
            "dmsetup",
            &["create", "carve-test-holder", "--table", &table],
        );
        let r = try_unstage(driver, vol.unstage()).await;
        refused(driver, r, Code::FailedPrecondition, "held by dm-");
        assert_eq!(session_count(), 1, "still logged in");
        assert!(
            Path::new(&format!("/sys/class/block/{disk}")).exists(),
            "disk kept"
        );
        run_ok("dmsetup", &["remove", "carve-test-holder"]);
        node_unstage(driver, vol.unstage()).await;
        retire(driver, &vol, &driver.lab.initiator).await;
    }

    async fn unstage_refuses_while_mounted_in_another_namespace(driver: &Driver) {
        let cap = fs("ext4", &[]);
        let vol = staged(driver, "other-ns", 64 * MIB, &cap).await;
        let written = checksum::write_file(&vol.staging.join("d.bin"), MIB_LEN, 7);
        let mut holder = std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sleep", "600"])
            .spawn()
            .expect("unshare");
        let ours = std::fs::read_link("/proc/self/ns/mnt").unwrap();
        let ns = format!("/proc/{}/ns/mnt", holder.id());
        for _ in 0..100 {
            if std::fs::read_link(&ns).is_ok_and(|n| n != ours) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let r = try_unstage(driver, vol.unstage()).await;
        let _ = holder.kill();
        let _ = holder.wait();
        refused(
            driver,
            r,
            Code::FailedPrecondition,
            "another mount namespace",
        );
        assert!(mount_at(&vol.staging).is_some(), "nothing torn down");
        assert_eq!(checksum::file_sha256(&vol.staging.join("d.bin")), written);
        node_unstage(driver, vol.unstage()).await;
        retire(driver, &vol, &driver.lab.initiator).await;
    }

    async fn unstage_finishes_when_the_target_is_gone(driver: &Driver) {
        let cap = fs("ext4", &[]);
        let vol = staged(driver, "gone", 64 * MIB, &cap).await;
        let target = driver.target_path(&vol.id);
        node_publish(driver, vol.publish_at(&cap, &target, false)).await;
        checksum::write_file(&target.join("d.bin"), MIB_LEN, 8);
        for session in std::fs::read_dir("/sys/class/iscsi_session").unwrap() {
            let tmo = session.unwrap().path().join("recovery_tmo");
            std::fs::write(tmo, "5").expect("recovery_tmo");
        }
        let iqn = vol.publish["targetIqn"].clone();
        run_ok("targetcli", &["/iscsi", "delete", &iqn]);
        node_unpublish(driver, vol.unpublish_at(&target)).await;
        unstage_ok(driver, &vol, "NodeUnstage after the target vanished").await;
        assert!(mount_at(&vol.staging).is_none());
        assert_eq!(session_count(), 0, "logged out");
        unstage_ok(driver, &vol, "NodeUnstage again").await;
        retire(driver, &vol, &driver.lab.initiator).await;
    }

    /// ext4 `errors=remount-ro` after an error, and XFS after a forced shutdown: stats say
    /// abnormal and why, a new publish is refused, and unpublish and unstage still finish.
    async fn broken_filesystems(driver: &Driver, fs_type: &str, size: i64) {
        let flags: &[&str] = if fs_type == "ext4" {
            &["errors=remount-ro"]
        } else {
            &[]
        };
        let cap = fs(fs_type, flags);
        let vol = staged(driver, &format!("sick-{fs_type}"), size, &cap).await;
        let target = driver.target_path(&vol.id);
        node_publish(driver, vol.publish_at(&cap, &target, false)).await;
        checksum::write_file(&target.join("d.bin"), MIB_LEN, 9);
        assert!(
            !condition(driver, vol.stats(&target)).await.0,
            "healthy at first"
        );
        let disk = driver.staged_disk(&vol.id);
        let why = if fs_type == "ext4" {
            std::fs::write(
                format!("/sys/fs/ext4/{disk}/trigger_fs_error"),
                "carve test",
            )
            .expect("trigger_fs_error");
            "ext4 filesystem on /dev/" // went read-only, or recorded errors: whichever shows first
        } else {
            run_ok(
                "xfs_io",
                &["-x", "-c", "shutdown", &vol.staging.to_string_lossy()],
            );
            "I/O errors"
        };
        let (abnormal, message) = condition(driver, vol.stats(&target)).await;
        assert!(abnormal && message.contains(why), "{message}");
        let other = driver.target_path(&format!("{}-2", vol.id));
        let r = try_publish(driver, vol.publish_at(&cap, &other, false)).await;
        refused(driver, r, Code::FailedPrecondition, why);
        node_unpublish(driver, vol.unpublish_at(&other)).await;
        node_unpublish(driver, vol.unpublish_at(&target)).await;
        unstage_ok(driver, &vol, "NodeUnstage of a broken filesystem").await;
        assert!(mount_at(&vol.staging).is_none());
        retire(driver, &vol, &driver.lab.initiator).await;
    }

    async fn ext4_gone_read_only(driver: &Driver) {
        broken_filesystems(driver, "ext4", 64 * MIB).await;
    }

    async fn xfs_shut_down(driver: &Driver) {
        broken_filesystems(driver, "xfs", 320 * MIB).await;
    }

    guest_test!(
        raw_data_survives_a_filesystem_stage_attempt,
        raw_data_is_never_formatted
    );

    /// Both refusals, one after the other, on one driver.
    async fn unstage_refusals(driver: &Driver) {
        unstage_refuses_while_a_holder_uses_the_disk(driver).await;
        unstage_refuses_while_mounted_in_another_namespace(driver).await;
    }

    guest_test!(
        unstage_with_a_holder_or_another_mount_namespace_is_refused_and_changes_nothing,
        unstage_refusals
    );

    guest_test!(
        unstage_after_the_target_vanished_leaves_nothing,
        unstage_finishes_when_the_target_is_gone
    );

    guest_test!(
        ext4_gone_read_only_is_abnormal_unpublishable_and_unstages,
        ext4_gone_read_only
    );

    guest_test!(
        xfs_shut_down_is_abnormal_unpublishable_and_unstages,
        xfs_shut_down
    );
}
