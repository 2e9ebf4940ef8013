//! Guest tier, node plugin: what NodeStage refuses (a filesystem of another type, a partition
//! table, the wrong disk, an initiator outside the ACL, a wrong CHAP secret) and that it leaves
//! the data and the machine as they were; CHAP from ControllerPublish secrets; a plugin restart
//! between stage and unstage; NodeGetVolumeStats (mount, block, a session killed behind the
//! plugin's back); NodeExpandVolume online for ext4, XFS and block while the data is read; an
//! XFS clone staged beside its source (duplicate UUID). Volumes come from the real controller
//! (CreateVolume + ControllerPublish); every scenario ends with leak accounting.
//!
//! Until ControllerExpandVolume lands, expansion grows the LV with `lvextend` while it is
//! exported (the target reads the backing device's size on every READ CAPACITY), then calls
//! NodeExpandVolume as the CO would after ControllerExpandVolume. Until content sources land,
//! a clone is the source LV copied block for block into a second volume while the source is
//! mounted: the same bytes, the same XFS UUID and a log that may need replaying.

mod node_plugin {
    use carve_guest_tests::{Driver, DriverOptions, Lab, assert_no_leaks, data, run, run_ok};
    use carvectl::{
        Client, Endpoint,
        request::{block_capability, capacity_range, mount_capability},
    };
    use csi_proto::v1::{
        ControllerPublishVolumeRequest, ControllerUnpublishVolumeRequest, CreateVolumeRequest,
        DeleteVolumeRequest, NodeExpandVolumeRequest, NodeGetInfoRequest,
        NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse, NodePublishVolumeRequest,
        NodeStageVolumeRequest, NodeUnpublishVolumeRequest, NodeUnstageVolumeRequest,
        VolumeCapability, volume_capability::access_mode::Mode, volume_usage::Unit,
    };
    use sha2::{Digest, Sha256};
    use std::{
        collections::HashMap,
        io::{Read, Seek, SeekFrom, Write},
        path::{Path, PathBuf},
        process::{Child, Command, Stdio},
        sync::{
            Arc,
            atomic::{AtomicBool, Ordering},
        },
        time::Duration,
    };
    use tonic::Code;

    const MIB: i64 = 1024 * 1024;
    const DATA_LEN: usize = 8 * 1024 * 1024;

    fn ext4() -> VolumeCapability {
        mount_capability(Mode::SingleNodeWriter, "ext4", &[], "")
    }

    fn xfs() -> VolumeCapability {
        mount_capability(Mode::SingleNodeWriter, "xfs", &[], "")
    }

    fn block() -> VolumeCapability {
        block_capability(Mode::SingleNodeWriter)
    }

    /// A volume created by the controller and published to one node, with the paths kubelet
    /// would give it.
    struct Vol {
        id: String,
        capacity: i64,
        context: HashMap<String, String>,
        publish: HashMap<String, String>,
        cap: VolumeCapability,
        staging: PathBuf,
        target: PathBuf,
    }

    impl Vol {
        fn stage_as(&self, cap: &VolumeCapability) -> NodeStageVolumeRequest {
            NodeStageVolumeRequest {
                volume_id: self.id.clone(),
                publish_context: self.publish.clone(),
                staging_target_path: self.staging.display().to_string(),
                volume_capability: Some(cap.clone()),
                volume_context: self.context.clone(),
                ..Default::default()
            }
        }

        fn stage(&self) -> NodeStageVolumeRequest {
            self.stage_as(&self.cap)
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

        fn unpublish(&self) -> NodeUnpublishVolumeRequest {
            NodeUnpublishVolumeRequest {
                volume_id: self.id.clone(),
                target_path: self.target.display().to_string(),
            }
        }

        fn unstage(&self) -> NodeUnstageVolumeRequest {
            NodeUnstageVolumeRequest {
                volume_id: self.id.clone(),
                staging_target_path: self.staging.display().to_string(),
            }
        }

        fn stats(&self, path: &Path) -> NodeGetVolumeStatsRequest {
            NodeGetVolumeStatsRequest {
                volume_id: self.id.clone(),
                volume_path: path.display().to_string(),
                staging_target_path: self.staging.display().to_string(),
            }
        }

        /// The LV on the storage side (the same machine in the lab).
        fn lv(&self, lab: &Lab) -> PathBuf {
            PathBuf::from(format!("/dev/{}/{}", lab.vg, self.id))
        }

        fn target_iqn(&self) -> &str {
            &self.publish["targetIqn"]
        }
    }

    async fn create(driver: &Driver, name: &str, size: i64, cap: &VolumeCapability) -> Vol {
        let created = driver
            .controller
            .controller
            .clone()
            .create_volume(CreateVolumeRequest {
                name: name.into(),
                capacity_range: capacity_range(size, 0),
                volume_capabilities: vec![cap.clone()],
                parameters: HashMap::from([("thin".to_string(), "true".to_string())]),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("CreateVolume: {s:?}\n{}", driver.logs()))
            .into_inner()
            .volume
            .expect("volume");
        let id = created.volume_id.clone();
        Vol {
            capacity: created.capacity_bytes,
            context: created.volume_context,
            publish: HashMap::new(),
            cap: cap.clone(),
            staging: driver.staging_path(&id),
            target: driver.target_path(&id),
            id,
        }
    }

    async fn controller_publish(
        driver: &Driver,
        vol: &Vol,
        node_id: &str,
        secrets: HashMap<String, String>,
    ) -> HashMap<String, String> {
        driver
            .controller
            .controller
            .clone()
            .controller_publish_volume(ControllerPublishVolumeRequest {
                volume_id: vol.id.clone(),
                node_id: node_id.into(),
                volume_capability: Some(vol.cap.clone()),
                volume_context: vol.context.clone(),
                secrets,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("ControllerPublish: {s:?}\n{}", driver.logs()))
            .into_inner()
            .publish_context
    }

    /// CreateVolume + ControllerPublish to this node.
    async fn provision(driver: &Driver, name: &str, size: i64, cap: &VolumeCapability) -> Vol {
        let mut vol = create(driver, name, size, cap).await;
        vol.publish = controller_publish(driver, &vol, &driver.lab.initiator, HashMap::new()).await;
        vol
    }

    async fn controller_unpublish(driver: &Driver, vol: &Vol, node_id: &str) {
        driver
            .controller
            .controller
            .clone()
            .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
                volume_id: vol.id.clone(),
                node_id: node_id.into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("ControllerUnpublish: {s:?}\n{}", driver.logs()));
    }

    /// ControllerUnpublish from this node + DeleteVolume.
    async fn retire(driver: &Driver, vol: &Vol) {
        controller_unpublish(driver, vol, &driver.lab.initiator).await;
        driver
            .controller
            .controller
            .clone()
            .delete_volume(DeleteVolumeRequest {
                volume_id: vol.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("DeleteVolume: {s:?}\n{}", driver.logs()));
    }

    async fn stage_publish(driver: &Driver, vol: &Vol) {
        let mut node = driver.node.node.clone();
        node.node_stage_volume(vol.stage())
            .await
            .unwrap_or_else(|s| panic!("NodeStage: {s:?}\n{}", driver.logs()));
        node.node_publish_volume(vol.publish())
            .await
            .unwrap_or_else(|s| panic!("NodePublish: {s:?}\n{}", driver.logs()));
    }

    async fn unpublish_unstage(driver: &Driver, vol: &Vol) {
        let mut node = driver.node.node.clone();
        node.node_unpublish_volume(vol.unpublish())
            .await
            .unwrap_or_else(|s| panic!("NodeUnpublish: {s:?}\n{}", driver.logs()));
        node.node_unstage_volume(vol.unstage())
            .await
            .unwrap_or_else(|s| panic!("NodeUnstage: {s:?}\n{}", driver.logs()));
    }

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
            !is_mountpoint(&staging),
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

    fn is_mountpoint(path: &Path) -> bool {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let path = path.to_string_lossy();
        mountinfo
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(path.as_ref()))
    }

    fn node_log(driver: &Driver) -> String {
        std::fs::read_to_string(driver.dir.path().join("node.log")).unwrap_or_default()
    }

    async fn stats(driver: &Driver, req: NodeGetVolumeStatsRequest) -> NodeGetVolumeStatsResponse {
        driver
            .node
            .node
            .clone()
            .node_get_volume_stats(req)
            .await
            .unwrap_or_else(|s| panic!("NodeGetVolumeStats: {s:?}\n{}", driver.logs()))
            .into_inner()
    }

    fn usage(stats: &NodeGetVolumeStatsResponse, unit: Unit) -> (i64, i64, i64) {
        let u = stats
            .usage
            .iter()
            .find(|u| u.unit == unit as i32)
            .unwrap_or_else(|| panic!("no {unit:?} usage in {stats:?}"));
        (u.total, u.used, u.available)
    }

    fn sha256(bytes: &[u8]) -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn blkid(device: &Path, tag: &str) -> String {
        let out = run(
            "blkid",
            &["-p", "-o", "value", "-s", tag, &device.to_string_lossy()],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn lv_size(lab: &Lab, vol: &Vol) -> i64 {
        let lv = format!("{}/{}", lab.vg, vol.id);
        let out = run_ok(
            "lvs",
            &[
                "--noheadings",
                "--nosuffix",
                "--units",
                "b",
                "-o",
                "lv_size",
                &lv,
            ],
        );
        out.trim().parse().expect("lv_size in bytes")
    }

    fn device_size(path: &Path) -> i64 {
        let mut file = std::fs::File::open(path).expect("open device");
        file.seek(SeekFrom::End(0)).expect("seek to end") as i64
    }

    /// Prints how long a scenario took (seen with `--nocapture`), pass or fail.
    struct Timer(&'static str, std::time::Instant);

    impl Timer {
        fn start(name: &'static str) -> Self {
            Self(name, std::time::Instant::now())
        }
    }

    impl Drop for Timer {
        fn drop(&mut self) {
            eprintln!(
                "node_plugin::{}: {:.1} s",
                self.0,
                self.1.elapsed().as_secs_f64()
            );
        }
    }

    // ---------------------------------------------------------------------------------------
    // Never reformat, never the wrong disk

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn a_filesystem_of_another_type_is_never_reformatted() {
        let _timer = Timer::start("a_filesystem_of_another_type_is_never_reformatted");
        let lab = Lab::from_env();
        let driver = Driver::start(&lab, DriverOptions::default()).await;
        let vol = provision(&driver, "node-otherfs", 320 * MIB, &xfs()).await;
        stage_publish(&driver, &vol).await;
        let written = data::write_file(&vol.target.join("data.bin"), DATA_LEN, 11);
        unpublish_unstage(&driver, &vol).await;

        stage_refused(
            &driver,
            &driver.node,
            vol.stage_as(&ext4()),
            Code::FailedPrecondition,
            "already holds xfs",
        )
        .await;
        assert_eq!(blkid(&vol.lv(&lab), "TYPE"), "xfs", "still XFS on the LV");

        stage_publish(&driver, &vol).await;
        assert_eq!(
            data::file_sha256(&vol.target.join("data.bin")),
            written,
            "the data survived the refused stage"
        );
        unpublish_unstage(&driver, &vol).await;
        retire(&driver, &vol).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    /// A DOS label with one Linux partition from sector 2048 to the end, then a pattern.
    fn partitioned_image(sectors: u32) -> Vec<u8> {
        let mut image: Vec<u8> = (0..MIB as usize).map(|i| (i * 31 % 251) as u8).collect();
        image[..512].fill(0);
        let entry = &mut image[446..462];
        entry[4] = 0x83;
        entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
        entry[12..16].copy_from_slice(&(sectors - 2048).to_le_bytes());
        image[510] = 0x55;
        image[511] = 0xaa;
        image
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn a_partition_table_is_never_formatted() {
        let _timer = Timer::start("a_partition_table_is_never_formatted");
        let lab = Lab::from_env();
        let driver = Driver::start(&lab, DriverOptions::default()).await;
        // Written through the CO path: stage and publish as block, write the label through
        // the pod's device file, unstage.
        let vol = provision(&driver, "node-parts", 32 * MIB, &block()).await;
        stage_publish(&driver, &vol).await;
        let image = partitioned_image((vol.capacity / 512) as u32);
        {
            let mut dev = std::fs::OpenOptions::new()
                .write(true)
                .open(&vol.target)
                .expect("open the published device");
            dev.write_all(&image).expect("write the label");
            dev.sync_all().expect("fsync");
        }
        unpublish_unstage(&driver, &vol).await;
        assert_eq!(
            blkid(&vol.lv(&lab), "PTTYPE"),
            "dos",
            "the LV holds the label"
        );

        for cap in [ext4(), xfs()] {
            stage_refused(
                &driver,
                &driver.node,
                vol.stage_as(&cap),
                Code::FailedPrecondition,
                "partition table",
            )
            .await;
        }
        assert_eq!(
            data::device_sha256(&vol.lv(&lab), image.len()),
            sha256(&image),
            "the label and the bytes after it are unchanged"
        );
        retire(&driver, &vol).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn a_disk_with_another_serial_is_refused_before_any_write() {
        let _timer = Timer::start("a_disk_with_another_serial_is_refused_before_any_write");
        let lab = Lab::from_env();
        let driver = Driver::start(&lab, DriverOptions::default()).await;
        let vol = provision(&driver, "node-serial", 32 * MIB, &ext4()).await;
        let mut req = vol.stage();
        req.publish_context.insert(
            "serial".into(),
            "5a0c1e00-0000-4000-8000-000000000bad".into(),
        );
        stage_refused(
            &driver,
            &driver.node,
            req,
            Code::FailedPrecondition,
            "serial",
        )
        .await;
        let probe = run("blkid", &["-p", &vol.lv(&lab).to_string_lossy()]);
        assert_eq!(
            probe.status.code(),
            Some(2),
            "nothing was written: the LV still has no signature"
        );
        retire(&driver, &vol).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    // ---------------------------------------------------------------------------------------
    // Who may log in

    /// A second csi-node on this machine that logs in as the lab's second initiator, through
    /// its iscsiadm iface. [`SecondNode::stop`] ends it; a panic kills it (Drop).
    struct SecondNode {
        child: Child,
        client: Option<Client>,
        state: PathBuf,
    }

    impl SecondNode {
        async fn start(driver: &Driver) -> Self {
            let dir = driver.dir.path();
            let socket = dir.join("node2.sock");
            let state = dir.join("node2-state");
            let log = std::fs::File::create(dir.join("node2.log")).expect("node2 log");
            let child = Command::new("csi-node")
                .arg("--endpoint")
                .arg(format!("unix://{}", socket.display()))
                .arg("--state-dir")
                .arg(&state)
                .arg("--kubelet-dir")
                .arg(dir)
                .args(["--iscsi-iface", &driver.lab.iface2])
                .args(["--node-id", &driver.lab.initiator2])
                .args(["--upkeep-interval", "0"]) // as Driver's node: no sweeps of hand-made sessions
                .env("RUST_LOG", "debug")
                .stdout(Stdio::from(log.try_clone().expect("log fd")))
                .stderr(Stdio::from(log))
                .spawn()
                .expect("csi-node on PATH");
            let client =
                Client::wait_until_ready(&Endpoint::Unix(socket), Duration::from_secs(120))
                    .await
                    .expect("second csi-node ready");
            Self {
                child,
                client: Some(client),
                state,
            }
        }

        fn client(&self) -> &Client {
            self.client.as_ref().expect("running")
        }

        fn stage_records(&self) -> Vec<String> {
            std::fs::read_dir(&self.state)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        }

        /// SIGTERM, then waits without blocking the runtime: the plugin's graceful shutdown
        /// needs this side of the connection to answer, so the client is dropped first.
        async fn stop(mut self) {
            self.client = None;
            let _ = run("kill", &["-TERM", &self.child.id().to_string()]);
            for _ in 0..100 {
                if self.child.try_wait().ok().flatten().is_some() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    impl Drop for SecondNode {
        fn drop(&mut self) {
            // After stop, or on a panic: SIGKILL does not need the runtime to make progress.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn an_initiator_without_the_acl_cannot_log_in() {
        let _timer = Timer::start("an_initiator_without_the_acl_cannot_log_in");
        let lab = Lab::from_env();
        let driver = Driver::start(&lab, DriverOptions::default()).await;
        let node2 = SecondNode::start(&driver).await;
        let info = node2
            .client()
            .node
            .clone()
            .node_get_info(NodeGetInfoRequest {})
            .await
            .expect("NodeGetInfo")
            .into_inner();
        assert_eq!(info.node_id, lab.initiator2);

        let mut vol = provision(&driver, "node-acl", 32 * MIB, &ext4()).await;
        vol.staging = driver.staging_path("node2-acl");
        stage_refused(
            &driver,
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
        controller_unpublish(&driver, &vol, &lab.initiator).await;
        vol.publish = controller_publish(&driver, &vol, &lab.initiator2, HashMap::new()).await;
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
        controller_unpublish(&driver, &vol, &lab.initiator2).await;
        drop(node);
        node2.stop().await;
        driver
            .controller
            .controller
            .clone()
            .delete_volume(DeleteVolumeRequest {
                volume_id: vol.id.clone(),
                ..Default::default()
            })
            .await
            .expect("DeleteVolume");
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn chap_from_controller_publish_secrets_logs_in_and_a_wrong_secret_is_refused() {
        let _timer = Timer::start(
            "chap_from_controller_publish_secrets_logs_in_and_a_wrong_secret_is_refused",
        );
        let lab = Lab::from_env();
        let driver = Driver::start(&lab, DriverOptions::default()).await;
        let (user, password, wrong) = ("node1user", "node1-secret-pw-0419", "wrong-secret-pw-0419");
        let secrets = |password: &str| {
            HashMap::from([
                ("chapUsername".to_string(), user.to_string()),
                ("chapPassword".to_string(), password.to_string()),
            ])
        };
        let mut vol = create(&driver, "node-chap", 32 * MIB, &ext4()).await;
        vol.publish = controller_publish(&driver, &vol, &lab.initiator, secrets(password)).await;
        assert!(
            vol.publish.values().all(|v| !v.contains(password)),
            "no secret in publish_context"
        );

        let mut req = vol.stage();
        req.secrets = secrets(wrong);
        stage_refused(
            &driver,
            &driver.node,
            req,
            Code::FailedPrecondition,
            "authorization failure",
        )
        .await;
        stage_refused(
            &driver,
            &driver.node,
            vol.stage(),
            Code::FailedPrecondition,
            "authorization failure",
        )
        .await;

        let mut node = driver.node.node.clone();
        let mut req = vol.stage();
        req.secrets = secrets(password);
        node.node_stage_volume(req)
            .await
            .unwrap_or_else(|s| panic!("NodeStage with CHAP: {s:?}\n{}", driver.logs()));
        node.node_publish_volume(vol.publish())
            .await
            .expect("NodePublish");
        let written = data::write_file(&vol.target.join("data.bin"), DATA_LEN, 5);
        assert_eq!(data::file_sha256(&vol.target.join("data.bin")), written);
        unpublish_unstage(&driver, &vol).await;
        let log = node_log(&driver);
        assert!(
            !log.contains(password) && !log.contains(wrong),
            "a CHAP secret reached the node log"
        );
        retire(&driver, &vol).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    // ---------------------------------------------------------------------------------------
    // Restart, stats, condition

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn a_plugin_restart_between_stage_and_unstage_still_unstages() {
        let _timer = Timer::start("a_plugin_restart_between_stage_and_unstage_still_unstages");
        let lab = Lab::from_env();
        let mut driver = Driver::start(&lab, DriverOptions::default()).await;
        let vol = provision(&driver, "node-restart", 64 * MIB, &ext4()).await;
        stage_publish(&driver, &vol).await;
        let written = data::write_file(&vol.target.join("data.bin"), DATA_LEN, 3);

        driver.restart_node().await;
        let after = stats(&driver, vol.stats(&vol.target)).await;
        let condition = after.volume_condition.expect("condition");
        assert!(!condition.abnormal, "{condition:?}");
        assert_eq!(data::file_sha256(&vol.target.join("data.bin")), written);
        unpublish_unstage(&driver, &vol).await;
        assert_nothing_attached(&lab);
        retire(&driver, &vol).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn volume_stats_for_mount_and_block_and_abnormal_after_a_logout_behind_its_back() {
        let _timer = Timer::start(
            "volume_stats_for_mount_and_block_and_abnormal_after_a_logout_behind_its_back",
        );
        let lab = Lab::from_env();
        let driver = Driver::start(&lab, DriverOptions::default()).await;

        let fs = provision(&driver, "node-stats-fs", 64 * MIB, &ext4()).await;
        stage_publish(&driver, &fs).await;
        let before = stats(&driver, fs.stats(&fs.target)).await;
        let (total, used, available) = usage(&before, Unit::Bytes);
        assert!(
            total > 48 * MIB && total <= fs.capacity && used + available <= total,
            "bytes of a 64 MiB ext4: {before:?}"
        );
        let (inodes, _, free_inodes) = usage(&before, Unit::Inodes);
        assert!(inodes > 0 && free_inodes > 0 && free_inodes < inodes);
        data::write_file(&fs.target.join("data.bin"), DATA_LEN, 9);
        let after = stats(&driver, fs.stats(&fs.staging)).await;
        let (_, used_after, _) = usage(&after, Unit::Bytes);
        assert!(
            used_after - used >= DATA_LEN as i64,
            "used grew by the file: {used} -> {used_after}"
        );
        assert!(!after.volume_condition.expect("condition").abnormal);
        unpublish_unstage(&driver, &fs).await;

        let dev = provision(&driver, "node-stats-block", 32 * MIB, &block()).await;
        stage_publish(&driver, &dev).await;
        let healthy = stats(&driver, dev.stats(&dev.target)).await;
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
                &lab.portal,
                "--logout",
            ],
        );
        let sick = stats(&driver, dev.stats(&dev.target))
            .await
            .volume_condition
            .expect("condition");
        assert!(
            sick.abnormal && sick.message.contains("no iSCSI session"),
            "{sick:?}"
        );
        // The CO's teardown still completes and leaves nothing.
        unpublish_unstage(&driver, &dev).await;
        retire(&driver, &fs).await;
        retire(&driver, &dev).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    // ---------------------------------------------------------------------------------------
    // Online expansion

    /// Reads `file` over and over (page cache dropped each time) until stopped; returns the
    /// number of reads and of reads whose checksum differed from `expected`.
    fn reader(
        file: PathBuf,
        expected: String,
        stop: Arc<AtomicBool>,
    ) -> std::thread::JoinHandle<(u32, u32)> {
        std::thread::spawn(move || {
            let (mut reads, mut bad) = (0, 0);
            while reads == 0 || !stop.load(Ordering::Relaxed) {
                let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
                reads += 1;
                if data::file_sha256(&file) != expected {
                    bad += 1;
                }
            }
            (reads, bad)
        })
    }

    fn lvextend(lab: &Lab, vol: &Vol) {
        run_ok(
            "lvextend",
            &["-L", "+64M", &format!("{}/{}", lab.vg, vol.id)],
        );
    }

    async fn node_expand(driver: &Driver, vol: &Vol, required: i64) -> i64 {
        driver
            .node
            .node
            .clone()
            .node_expand_volume(NodeExpandVolumeRequest {
                volume_id: vol.id.clone(),
                volume_path: vol.target.display().to_string(),
                staging_target_path: vol.staging.display().to_string(),
                capacity_range: capacity_range(required, 0),
                volume_capability: Some(vol.cap.clone()),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("NodeExpandVolume: {s:?}\n{}", driver.logs()))
            .into_inner()
            .capacity_bytes
    }

    async fn mounted_volume_grows_online(name: &str, size: i64, cap: VolumeCapability) {
        let lab = Lab::from_env();
        let driver = Driver::start(&lab, DriverOptions::default()).await;
        let vol = provision(&driver, name, size, &cap).await;
        stage_publish(&driver, &vol).await;
        let file = vol.target.join("data.bin");
        let written = data::write_file(&file, DATA_LEN, 21);
        let (before, _, _) = usage(&stats(&driver, vol.stats(&vol.target)).await, Unit::Bytes);

        let stop = Arc::new(AtomicBool::new(false));
        let checks = reader(file.clone(), written.clone(), Arc::clone(&stop));
        lvextend(&lab, &vol);
        let grown = lv_size(&lab, &vol);
        assert_eq!(grown, vol.capacity + 64 * MIB);
        assert_eq!(node_expand(&driver, &vol, grown).await, grown);
        assert_eq!(node_expand(&driver, &vol, grown).await, grown, "idempotent");
        stop.store(true, Ordering::Relaxed);
        let (reads, bad) = checks.join().expect("reader");
        assert_eq!(
            bad, 0,
            "{bad} of {reads} reads saw other data while growing"
        );

        let (after, _, available) =
            usage(&stats(&driver, vol.stats(&vol.target)).await, Unit::Bytes);
        assert!(
            after >= before + 56 * MIB,
            "the filesystem grew online: {before} -> {after}"
        );
        // The new space is usable.
        assert!(available > 56 * MIB);
        let more = data::write_file(&vol.target.join("more.bin"), 2 * DATA_LEN, 22);

        // Unstage, restage (fsck runs for ext4): everything is still there.
        unpublish_unstage(&driver, &vol).await;
        stage_publish(&driver, &vol).await;
        assert_eq!(data::file_sha256(&file), written);
        assert_eq!(data::file_sha256(&vol.target.join("more.bin")), more);
        unpublish_unstage(&driver, &vol).await;
        retire(&driver, &vol).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn ext4_grows_online_while_a_reader_checks_the_data() {
        let _timer = Timer::start("ext4_grows_online_while_a_reader_checks_the_data");
        mounted_volume_grows_online("node-grow-ext4", 64 * MIB, ext4()).await;
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn xfs_grows_online_while_a_reader_checks_the_data() {
        let _timer = Timer::start("xfs_grows_online_while_a_reader_checks_the_data");
        mounted_volume_grows_online("node-grow-xfs", 320 * MIB, xfs()).await;
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn a_block_volume_shows_its_new_size_after_expansion() {
        let _timer = Timer::start("a_block_volume_shows_its_new_size_after_expansion");
        let lab = Lab::from_env();
        let driver = Driver::start(&lab, DriverOptions::default()).await;
        let vol = provision(&driver, "node-grow-block", 32 * MIB, &block()).await;
        stage_publish(&driver, &vol).await;
        let len = 4 * MIB as usize;
        let written = data::write_device(&vol.target, len, 31);
        assert_eq!(device_size(&vol.target), vol.capacity);

        lvextend(&lab, &vol);
        let grown = lv_size(&lab, &vol);
        assert_eq!(node_expand(&driver, &vol, grown).await, grown);
        assert_eq!(
            device_size(&vol.target),
            grown,
            "the pod's device shows the new size"
        );
        let now = stats(&driver, vol.stats(&vol.target)).await;
        assert_eq!(usage(&now, Unit::Bytes).0, grown);
        assert_eq!(data::device_sha256(&vol.target, len), written);

        unpublish_unstage(&driver, &vol).await;
        retire(&driver, &vol).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    // ---------------------------------------------------------------------------------------
    // XFS clones

    /// Copies `from` onto `to` (block devices of the same size) and fsyncs.
    fn copy_device(from: &Path, to: &Path) {
        let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
        let mut src = std::fs::File::open(from).expect("open source LV");
        let mut dst = std::fs::OpenOptions::new()
            .write(true)
            .open(to)
            .expect("open clone LV");
        let mut buf = vec![0u8; 4 * MIB as usize];
        loop {
            let n = src.read(&mut buf).expect("read source LV");
            if n == 0 {
                break;
            }
            dst.write_all(&buf[..n]).expect("write clone LV");
        }
        dst.sync_all().expect("fsync clone LV");
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn an_xfs_clone_stages_beside_its_mounted_source() {
        let _timer = Timer::start("an_xfs_clone_stages_beside_its_mounted_source");
        let lab = Lab::from_env();
        let driver = Driver::start(&lab, DriverOptions::default()).await;
        let source = provision(&driver, "node-xfs-source", 320 * MIB, &xfs()).await;
        let clone = provision(&driver, "node-xfs-clone", 320 * MIB, &xfs()).await;
        assert_eq!(source.capacity, clone.capacity);
        stage_publish(&driver, &source).await;
        let written = data::write_file(&source.target.join("data.bin"), DATA_LEN, 41);

        // A crash-consistent copy of the mounted source, as a snapshot would be.
        copy_device(&source.lv(&lab), &clone.lv(&lab));
        let uuid = blkid(&source.lv(&lab), "UUID");
        assert!(!uuid.is_empty());
        assert_eq!(
            blkid(&clone.lv(&lab), "UUID"),
            uuid,
            "the clone has the same UUID"
        );

        stage_publish(&driver, &clone).await;
        assert_eq!(
            data::file_sha256(&clone.target.join("data.bin")),
            written,
            "the clone holds the source's data"
        );
        data::write_file(&clone.target.join("clone-only.bin"), MIB as usize, 42);
        assert!(
            !source.target.join("clone-only.bin").exists(),
            "the clone is independent of its source"
        );
        assert_eq!(data::file_sha256(&source.target.join("data.bin")), written);

        unpublish_unstage(&driver, &clone).await;
        unpublish_unstage(&driver, &source).await;
        retire(&driver, &clone).await;
        retire(&driver, &source).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }
}
