//! Guest tier, data safety (issue 14), against the real binaries: a read-only attachment is
//! unwritable (the LUN write-protected through either LIO backend, ext4/xfs staged without
//! replay and left byte-identical; a read-only block publication refuses writes through its
//! device node); raw data is never formatted; unstage refuses while a holder or another mount
//! namespace uses the disk and changes nothing, and finishes when the target is gone; a
//! filesystem that went read-only or shut down is reported abnormal, not published, and still
//! unstages. Every scenario checks its data by checksum and ends with leak accounting.

mod safety {
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
    use std::{
        collections::HashMap,
        io::Write,
        path::{Path, PathBuf},
        time::Duration,
    };
    use tonic::{Code, Status};

    const MIB: i64 = 1024 * 1024;

    fn fs(fs_type: &str, flags: &[&str]) -> VolumeCapability {
        mount_capability(Mode::SingleNodeWriter, fs_type, flags, "")
    }

    fn block() -> VolumeCapability {
        block_capability(Mode::SingleNodeWriter)
    }

    /// A volume and the paths kubelet would give it.
    struct Vol {
        id: String,
        context: HashMap<String, String>,
        publish: HashMap<String, String>,
        staging: PathBuf,
    }

    fn check<T>(driver: &Driver, what: &str, r: Result<tonic::Response<T>, Status>) -> T {
        r.unwrap_or_else(|s| panic!("{what}: {s:?}\n{}", driver.logs()))
            .into_inner()
    }

    async fn create(driver: &Driver, name: &str, size: i64, cap: &VolumeCapability) -> Vol {
        create_for(driver, name, size, std::slice::from_ref(cap)).await
    }

    async fn create_for(driver: &Driver, name: &str, size: i64, caps: &[VolumeCapability]) -> Vol {
        let r = driver
            .controller
            .controller
            .clone()
            .create_volume(CreateVolumeRequest {
                name: name.into(),
                capacity_range: capacity_range(size, 0),
                volume_capabilities: caps.to_vec(),
                parameters: HashMap::from([("thin".to_string(), "true".to_string())]),
                ..Default::default()
            })
            .await;
        let v = check(driver, "CreateVolume", r).volume.expect("volume");
        Vol {
            staging: driver.staging_path(&v.volume_id),
            id: v.volume_id,
            context: v.volume_context,
            publish: HashMap::new(),
        }
    }

    async fn attach(driver: &Driver, vol: &mut Vol, cap: &VolumeCapability, readonly: bool) {
        let r = driver
            .controller
            .controller
            .clone()
            .controller_publish_volume(ControllerPublishVolumeRequest {
                volume_id: vol.id.clone(),
                node_id: driver.lab.initiator.clone(),
                volume_capability: Some(cap.clone()),
                readonly,
                volume_context: vol.context.clone(),
                ..Default::default()
            })
            .await;
        vol.publish = check(driver, "ControllerPublish", r).publish_context;
        assert_eq!(
            vol.publish["readonly"],
            readonly.to_string(),
            "{:?}",
            vol.publish
        );
    }

    async fn detach(driver: &Driver, vol: &Vol) {
        let r = driver
            .controller
            .controller
            .clone()
            .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
                volume_id: vol.id.clone(),
                node_id: driver.lab.initiator.clone(),
                ..Default::default()
            })
            .await;
        check(driver, "ControllerUnpublish", r);
    }

    async fn delete(driver: &Driver, vol: &Vol) {
        let r = driver
            .controller
            .controller
            .clone()
            .delete_volume(DeleteVolumeRequest {
                volume_id: vol.id.clone(),
                ..Default::default()
            })
            .await;
        check(driver, "DeleteVolume", r);
    }

    async fn stage(driver: &Driver, vol: &Vol, cap: &VolumeCapability) -> Result<(), Status> {
        driver
            .node
            .node
            .clone()
            .node_stage_volume(NodeStageVolumeRequest {
                volume_id: vol.id.clone(),
                publish_context: vol.publish.clone(),
                staging_target_path: vol.staging.display().to_string(),
                volume_capability: Some(cap.clone()),
                volume_context: vol.context.clone(),
                ..Default::default()
            })
            .await
            .map(drop)
    }

    async fn publish(
        driver: &Driver,
        vol: &Vol,
        cap: &VolumeCapability,
        target: &Path,
        readonly: bool,
    ) -> Result<(), Status> {
        driver
            .node
            .node
            .clone()
            .node_publish_volume(NodePublishVolumeRequest {
                volume_id: vol.id.clone(),
                publish_context: vol.publish.clone(),
                staging_target_path: vol.staging.display().to_string(),
                target_path: target.display().to_string(),
                volume_capability: Some(cap.clone()),
                readonly,
                volume_context: vol.context.clone(),
                ..Default::default()
            })
            .await
            .map(drop)
    }

    async fn unpublish(driver: &Driver, vol: &Vol, target: &Path) {
        let r = driver
            .node
            .node
            .clone()
            .node_unpublish_volume(NodeUnpublishVolumeRequest {
                volume_id: vol.id.clone(),
                target_path: target.display().to_string(),
            })
            .await;
        check(driver, "NodeUnpublish", r);
    }

    async fn unstage(driver: &Driver, vol: &Vol) -> Result<(), Status> {
        driver
            .node
            .node
            .clone()
            .node_unstage_volume(NodeUnstageVolumeRequest {
                volume_id: vol.id.clone(),
                staging_target_path: vol.staging.display().to_string(),
            })
            .await
            .map(drop)
    }

    fn ok(driver: &Driver, what: &str, r: Result<(), Status>) {
        if let Err(s) = r {
            panic!("{what}: {s:?}\n{}", driver.logs());
        }
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

    /// The mountinfo line of the mount at `path`, if any: (source, per-mount and super options).
    fn mount_at(path: &Path) -> Option<(String, String, String)> {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let path = path.to_string_lossy();
        text.lines().rev().find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.get(4) == Some(&path.as_ref())).then(|| {
                let dash = f.iter().position(|x| *x == "-").unwrap();
                (
                    f[dash + 2].to_string(),
                    f[5].to_string(),
                    f[dash + 3].to_string(),
                )
            })
        })
    }

    /// The kernel name of the volume's disk, from the node's stage record.
    fn disk_of(driver: &Driver, vol: &Vol) -> String {
        let record = std::fs::read_to_string(driver.state_dir().join(format!("{}.json", vol.id)))
            .expect("stage record");
        let json: serde_json::Value = serde_json::from_str(&record).unwrap();
        json["device"]
            .as_str()
            .expect("device in record")
            .to_string()
    }

    fn sysfs(path: &str) -> String {
        std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .trim()
            .to_string()
    }

    /// SHA-256 of the whole LV (sha256sum: the debug-built hasher is too slow under TCG).
    fn lv_sha(lab: &Lab, vol: &Vol) -> String {
        let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
        let lv = format!("/dev/{}/{}", lab.vg, vol.id);
        let out = run_ok("sha256sum", &[&lv]);
        out.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    }

    fn sessions() -> usize {
        std::fs::read_dir("/sys/class/iscsi_session").map_or(0, |d| d.count())
    }

    fn write_fails(path: &Path) -> bool {
        let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(path) else {
            return true;
        };
        f.write_all(&[0xa5; 4096])
            .and_then(|()| f.sync_all())
            .is_err()
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
        let mut vol = create(driver, &format!("ro-{fs_type}"), size, &cap).await;
        attach(driver, &mut vol, &cap, false).await;
        assert_eq!(vol.publish["blank"], "true", "a new thin volume is blank");
        let target = driver.target_path(&format!("{}-rw", vol.id));
        ok(driver, "NodeStage", stage(driver, &vol, &cap).await);
        ok(
            driver,
            "NodePublish",
            publish(driver, &vol, &cap, &target, false).await,
        );
        let written = checksum::write_file(&target.join("data.bin"), 4 << 20, 14);
        unpublish(driver, &vol, &target).await;
        ok(driver, "NodeUnstage", unstage(driver, &vol).await);
        detach(driver, &vol).await;
        let before = lv_sha(lab, &vol);

        attach(driver, &mut vol, &cap, true).await;
        assert_eq!(vol.publish["blank"], "false", "it holds data now");
        ok(
            driver,
            "read-only NodeStage",
            stage(driver, &vol, &cap).await,
        );
        let disk = disk_of(driver, &vol);
        assert_eq!(
            sysfs(&format!("/sys/class/block/{disk}/ro")),
            "1",
            "LUN write-protected"
        );
        let (_, _, super_options) = mount_at(&vol.staging).expect("staged");
        assert!(
            super_options.split(',').any(|o| o == "ro"),
            "{super_options}"
        );
        let target = driver.target_path(&format!("{}-ro", vol.id));
        ok(
            driver,
            "NodePublish ro",
            publish(driver, &vol, &cap, &target, true).await,
        );
        assert_eq!(checksum::file_sha256(&target.join("data.bin")), written);
        assert!(
            std::fs::write(target.join("new"), b"x").is_err(),
            "no write through the pod"
        );
        assert!(
            std::fs::write(vol.staging.join("new"), b"x").is_err(),
            "nor the staging path"
        );
        unpublish(driver, &vol, &target).await;
        ok(driver, "NodeUnstage ro", unstage(driver, &vol).await);
        detach(driver, &vol).await;
        assert_eq!(lv_sha(lab, &vol), before, "not a byte written");
        delete(driver, &vol).await;
    }

    /// A block volume: a read-only NodePublish of a read-write attachment, then a read-only
    /// attachment; both refuse writes through the pod's device node and read the data back.
    async fn readonly_block(driver: &Driver) {
        let cap = block();
        let mut vol = create(driver, "ro-block", 64 * MIB, &cap).await;
        attach(driver, &mut vol, &cap, false).await;
        ok(driver, "NodeStage", stage(driver, &vol, &cap).await);
        let rw = driver.target_path(&format!("{}-rw", vol.id));
        ok(
            driver,
            "NodePublish",
            publish(driver, &vol, &cap, &rw, false).await,
        );
        let written = checksum::write_device(&rw, 1 << 20, 41);
        unpublish(driver, &vol, &rw).await;
        let ro = driver.target_path(&format!("{}-ro", vol.id));
        ok(
            driver,
            "NodePublish ro",
            publish(driver, &vol, &cap, &ro, true).await,
        );
        assert!(
            write_fails(&ro),
            "a read-only block publication must refuse writes"
        );
        assert_eq!(checksum::device_sha256(&ro, 1 << 20), written);
        unpublish(driver, &vol, &ro).await;
        assert!(!ro.exists(), "the device file publish made is gone");
        ok(driver, "NodeUnstage", unstage(driver, &vol).await);
        detach(driver, &vol).await;

        attach(driver, &mut vol, &cap, true).await;
        ok(
            driver,
            "read-only NodeStage",
            stage(driver, &vol, &cap).await,
        );
        let disk = disk_of(driver, &vol);
        assert_eq!(
            sysfs(&format!("/sys/class/block/{disk}/ro")),
            "1",
            "LUN write-protected"
        );
        ok(
            driver,
            "NodePublish ro",
            publish(driver, &vol, &cap, &ro, true).await,
        );
        assert!(write_fails(&ro));
        assert!(
            write_fails(Path::new(&format!("/dev/{disk}"))),
            "nor through the disk"
        );
        assert_eq!(checksum::device_sha256(&ro, 1 << 20), written);
        unpublish(driver, &vol, &ro).await;
        ok(driver, "NodeUnstage", unstage(driver, &vol).await);
        detach(driver, &vol).await;
        delete(driver, &vol).await;
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn readonly_attachments_are_unwritable_through_configfs() {
        let _t = Timer::start("safety::readonly_attachments_are_unwritable_through_configfs");
        let lab = Lab::from_env();
        let driver = Driver::start(&lab, DriverOptions::default()).await;
        readonly_filesystem(&driver, "ext4", 64 * MIB).await;
        readonly_filesystem(&driver, "xfs", 320 * MIB).await;
        readonly_block(&driver).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn readonly_attachments_are_unwritable_through_targetcli() {
        let _t = Timer::start("safety::readonly_attachments_are_unwritable_through_targetcli");
        let lab = Lab::from_env();
        let options = DriverOptions {
            lio_backend: "targetcli",
            ..DriverOptions::default()
        };
        let driver = Driver::start(&lab, options).await;
        readonly_filesystem(&driver, "ext4", 64 * MIB).await; // the block path is backend-blind
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    // -------------------------------------------------------------------------------------
    // 2-4. Never format data; teardown; filesystem health (one driver)

    async fn raw_data_is_never_formatted(driver: &Driver) {
        let lab = &driver.lab;
        let both = [block(), fs("ext4", &[])];
        let mut vol = create_for(driver, "raw", 64 * MIB, &both).await;
        attach(driver, &mut vol, &block(), false).await;
        ok(driver, "NodeStage", stage(driver, &vol, &block()).await);
        let target = driver.target_path(&vol.id);
        ok(
            driver,
            "NodePublish",
            publish(driver, &vol, &block(), &target, false).await,
        );
        let written = checksum::write_device(&target, 16 << 20, 16);
        unpublish(driver, &vol, &target).await;
        ok(driver, "NodeUnstage", unstage(driver, &vol).await);
        detach(driver, &vol).await;

        let ext4 = fs("ext4", &[]);
        attach(driver, &mut vol, &ext4, false).await;
        assert_eq!(vol.publish["blank"], "false", "{:?}", vol.publish);
        let r = stage(driver, &vol, &ext4).await;
        refused(driver, r, Code::FailedPrecondition, "raw data");
        assert_eq!(sessions(), 0, "the refused stage logged out");
        assert!(mount_at(&vol.staging).is_none());
        assert_eq!(
            checksum::device_sha256(Path::new(&format!("/dev/{}/{}", lab.vg, vol.id)), 16 << 20),
            written,
            "the raw data survived"
        );
        detach(driver, &vol).await;
        delete(driver, &vol).await;
    }

    async fn unstage_refuses_while_a_holder_uses_the_disk(driver: &Driver) {
        let mut vol = create(driver, "held", 64 * MIB, &block()).await;
        attach(driver, &mut vol, &block(), false).await;
        ok(driver, "NodeStage", stage(driver, &vol, &block()).await);
        let disk = disk_of(driver, &vol);
        let sectors = sysfs(&format!("/sys/class/block/{disk}/size"));
        let table = format!("0 {sectors} linear /dev/{disk} 0");
        run_ok(
            "dmsetup",
            &["create", "carve-test-holder", "--table", &table],
        );
        let r = unstage(driver, &vol).await;
        refused(driver, r, Code::FailedPrecondition, "held by dm-");
        assert_eq!(sessions(), 1, "still logged in");
        assert!(
            Path::new(&format!("/sys/class/block/{disk}")).exists(),
            "disk kept"
        );
        run_ok("dmsetup", &["remove", "carve-test-holder"]);
        ok(driver, "NodeUnstage", unstage(driver, &vol).await);
        detach(driver, &vol).await;
        delete(driver, &vol).await;
    }

    async fn unstage_refuses_while_mounted_in_another_namespace(driver: &Driver) {
        let cap = fs("ext4", &[]);
        let mut vol = create(driver, "other-ns", 64 * MIB, &cap).await;
        attach(driver, &mut vol, &cap, false).await;
        ok(driver, "NodeStage", stage(driver, &vol, &cap).await);
        let written = checksum::write_file(&vol.staging.join("d.bin"), 1 << 20, 7);
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
        let r = unstage(driver, &vol).await;
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
        ok(driver, "NodeUnstage", unstage(driver, &vol).await);
        detach(driver, &vol).await;
        delete(driver, &vol).await;
    }

    async fn unstage_finishes_when_the_target_is_gone(driver: &Driver) {
        let cap = fs("ext4", &[]);
        let mut vol = create(driver, "gone", 64 * MIB, &cap).await;
        attach(driver, &mut vol, &cap, false).await;
        ok(driver, "NodeStage", stage(driver, &vol, &cap).await);
        let target = driver.target_path(&vol.id);
        ok(
            driver,
            "NodePublish",
            publish(driver, &vol, &cap, &target, false).await,
        );
        checksum::write_file(&target.join("d.bin"), 1 << 20, 8);
        for session in std::fs::read_dir("/sys/class/iscsi_session").unwrap() {
            let tmo = session.unwrap().path().join("recovery_tmo");
            std::fs::write(tmo, "5").expect("recovery_tmo");
        }
        let iqn = vol.publish["targetIqn"].clone();
        run_ok("targetcli", &["/iscsi", "delete", &iqn]);
        unpublish(driver, &vol, &target).await;
        ok(
            driver,
            "NodeUnstage after the target vanished",
            unstage(driver, &vol).await,
        );
        assert!(mount_at(&vol.staging).is_none());
        assert_eq!(sessions(), 0, "logged out");
        ok(driver, "NodeUnstage again", unstage(driver, &vol).await);
        detach(driver, &vol).await;
        delete(driver, &vol).await;
    }

    async fn stats_condition(driver: &Driver, vol: &Vol, path: &Path) -> (bool, String) {
        let r = driver
            .node
            .node
            .clone()
            .node_get_volume_stats(NodeGetVolumeStatsRequest {
                volume_id: vol.id.clone(),
                volume_path: path.display().to_string(),
                staging_target_path: vol.staging.display().to_string(),
            })
            .await;
        let c = check(driver, "NodeGetVolumeStats", r)
            .volume_condition
            .expect("condition");
        (c.abnormal, c.message)
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
        let mut vol = create(driver, &format!("sick-{fs_type}"), size, &cap).await;
        attach(driver, &mut vol, &cap, false).await;
        ok(driver, "NodeStage", stage(driver, &vol, &cap).await);
        let target = driver.target_path(&vol.id);
        ok(
            driver,
            "NodePublish",
            publish(driver, &vol, &cap, &target, false).await,
        );
        checksum::write_file(&target.join("d.bin"), 1 << 20, 9);
        assert!(
            !stats_condition(driver, &vol, &target).await.0,
            "healthy at first"
        );
        let disk = disk_of(driver, &vol);
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
        let (abnormal, message) = stats_condition(driver, &vol, &target).await;
        assert!(abnormal && message.contains(why), "{message}");
        let other = driver.target_path(&format!("{}-2", vol.id));
        let r = publish(driver, &vol, &cap, &other, false).await;
        refused(driver, r, Code::FailedPrecondition, why);
        unpublish(driver, &vol, &other).await;
        unpublish(driver, &vol, &target).await;
        ok(
            driver,
            "NodeUnstage of a broken filesystem",
            unstage(driver, &vol).await,
        );
        assert!(mount_at(&vol.staging).is_none());
        detach(driver, &vol).await;
        delete(driver, &vol).await;
    }

    /// One scenario on its own driver, ending with leak accounting.
    async fn scenario<F, Fut>(name: &'static str, body: F)
    where
        F: FnOnce(Driver) -> Fut,
        Fut: std::future::Future<Output = Driver>,
    {
        let _t = Timer::start(name);
        let lab = Lab::from_env();
        let driver = body(Driver::start(&lab, DriverOptions::default()).await).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn raw_data_survives_a_filesystem_stage_attempt() {
        scenario(
            "safety::raw_data_survives_a_filesystem_stage_attempt",
            |d| async {
                raw_data_is_never_formatted(&d).await;
                d
            },
        )
        .await;
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn unstage_with_a_holder_or_another_mount_namespace_is_refused_and_changes_nothing() {
        scenario("safety::unstage_refusals", |d| async {
            unstage_refuses_while_a_holder_uses_the_disk(&d).await;
            unstage_refuses_while_mounted_in_another_namespace(&d).await;
            d
        })
        .await;
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn unstage_after_the_target_vanished_leaves_nothing() {
        scenario(
            "safety::unstage_after_the_target_vanished_leaves_nothing",
            |d| async {
                unstage_finishes_when_the_target_is_gone(&d).await;
                d
            },
        )
        .await;
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn ext4_gone_read_only_is_abnormal_unpublishable_and_unstages() {
        scenario("safety::ext4_gone_read_only", |d| async {
            broken_filesystems(&d, "ext4", 64 * MIB).await;
            d
        })
        .await;
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn xfs_shut_down_is_abnormal_unpublishable_and_unstages() {
        scenario("safety::xfs_shut_down", |d| async {
            broken_filesystems(&d, "xfs", 320 * MIB).await;
            d
        })
        .await;
    }
}
