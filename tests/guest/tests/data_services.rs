//! Guest tier, data services through the real controller and node plugins: online expansion
//! (ControllerExpandVolume + NodeExpandVolume) of mounted ext4 and XFS volumes while a reader
//! checks the data, and of a block volume; snapshot, write more, restore (the restore holds
//! exactly the snapshot's data); a clone independent of its source and staged on another
//! node; deleting a source that has snapshots (allowed: thin snapshots are independent, and
//! they stay usable); an XFS restore mounted beside its still-mounted source (duplicate UUID).
//! Every scenario ends with leak accounting.

mod data_services {
    use carve_guest_tests::{Driver, DriverOptions, Lab, assert_no_leaks, data, run, run_ok};
    use carvectl::{
        Client, Endpoint,
        request::{block_capability, capacity_range, from_snapshot, from_volume, mount_capability},
    };
    use csi_proto::v1::{
        ControllerExpandVolumeRequest, ControllerExpandVolumeResponse,
        ControllerPublishVolumeRequest, ControllerUnpublishVolumeRequest, CreateSnapshotRequest,
        CreateVolumeRequest, DeleteSnapshotRequest, DeleteVolumeRequest, GetSnapshotRequest,
        ListSnapshotsRequest, NodeExpandVolumeRequest, NodeGetVolumeStatsRequest,
        NodePublishVolumeRequest, NodeStageVolumeRequest, NodeUnpublishVolumeRequest,
        NodeUnstageVolumeRequest, Snapshot, VolumeCapability, VolumeContentSource,
        volume_capability::access_mode::Mode, volume_usage::Unit,
    };
    use std::{
        collections::HashMap,
        io::{Seek, SeekFrom},
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

    fn thin(on: bool) -> HashMap<String, String> {
        HashMap::from([("thin".to_string(), on.to_string())])
    }

    /// A volume from the controller, published to one node, with kubelet's paths.
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

        fn lv(&self, lab: &Lab) -> PathBuf {
            PathBuf::from(format!("/dev/{}/{}", lab.vg, self.id))
        }
    }

    async fn create(
        driver: &Driver,
        name: &str,
        size: i64,
        cap: &VolumeCapability,
        thin_lv: bool,
        source: Option<VolumeContentSource>,
    ) -> Result<Vol, tonic::Status> {
        let created = driver
            .controller
            .controller
            .clone()
            .create_volume(CreateVolumeRequest {
                name: name.into(),
                capacity_range: capacity_range(size, 0),
                volume_capabilities: vec![cap.clone()],
                parameters: thin(thin_lv),
                volume_content_source: source,
                ..Default::default()
            })
            .await?
            .into_inner()
            .volume
            .expect("volume");
        let id = created.volume_id.clone();
        Ok(Vol {
            capacity: created.capacity_bytes,
            context: created.volume_context,
            publish: HashMap::new(),
            cap: cap.clone(),
            staging: driver.staging_path(&id),
            target: driver.target_path(&id),
            id,
        })
    }

    async fn controller_publish(driver: &Driver, vol: &mut Vol, node_id: &str) {
        vol.publish = driver
            .controller
            .controller
            .clone()
            .controller_publish_volume(ControllerPublishVolumeRequest {
                volume_id: vol.id.clone(),
                node_id: node_id.into(),
                volume_capability: Some(vol.cap.clone()),
                volume_context: vol.context.clone(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("ControllerPublish: {s:?}\n{}", driver.logs()))
            .into_inner()
            .publish_context;
    }

    /// CreateVolume (from `source`, if any) + ControllerPublish to this node.
    async fn provision(
        driver: &Driver,
        name: &str,
        size: i64,
        cap: &VolumeCapability,
        thin_lv: bool,
        source: Option<VolumeContentSource>,
    ) -> Vol {
        let mut vol = create(driver, name, size, cap, thin_lv, source)
            .await
            .unwrap_or_else(|s| panic!("CreateVolume {name}: {s:?}\n{}", driver.logs()));
        controller_publish(driver, &mut vol, &driver.lab.initiator).await;
        vol
    }

    async fn stage_publish(driver: &Driver, node: &Client, vol: &Vol) {
        let mut node = node.node.clone();
        node.node_stage_volume(vol.stage())
            .await
            .unwrap_or_else(|s| panic!("NodeStage {}: {s:?}\n{}", vol.id, driver.logs()));
        node.node_publish_volume(vol.publish())
            .await
            .unwrap_or_else(|s| panic!("NodePublish {}: {s:?}\n{}", vol.id, driver.logs()));
    }

    async fn unpublish_unstage(driver: &Driver, node: &Client, vol: &Vol) {
        let mut node = node.node.clone();
        node.node_unpublish_volume(NodeUnpublishVolumeRequest {
            volume_id: vol.id.clone(),
            target_path: vol.target.display().to_string(),
        })
        .await
        .unwrap_or_else(|s| panic!("NodeUnpublish {}: {s:?}\n{}", vol.id, driver.logs()));
        node.node_unstage_volume(NodeUnstageVolumeRequest {
            volume_id: vol.id.clone(),
            staging_target_path: vol.staging.display().to_string(),
        })
        .await
        .unwrap_or_else(|s| panic!("NodeUnstage {}: {s:?}\n{}", vol.id, driver.logs()));
    }

    /// ControllerUnpublish from `node_id` + DeleteVolume.
    async fn retire(driver: &Driver, vol: &Vol, node_id: &str) {
        let mut controller = driver.controller.controller.clone();
        controller
            .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
                volume_id: vol.id.clone(),
                node_id: node_id.into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("ControllerUnpublish: {s:?}\n{}", driver.logs()));
        delete_volume(driver, &vol.id).await;
    }

    async fn delete_volume(driver: &Driver, id: &str) {
        driver
            .controller
            .controller
            .clone()
            .delete_volume(DeleteVolumeRequest {
                volume_id: id.into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("DeleteVolume {id}: {s:?}\n{}", driver.logs()));
    }

    async fn controller_expand(
        driver: &Driver,
        vol: &Vol,
        required: i64,
        limit: i64,
    ) -> Result<ControllerExpandVolumeResponse, tonic::Status> {
        driver
            .controller
            .controller
            .clone()
            .controller_expand_volume(ControllerExpandVolumeRequest {
                volume_id: vol.id.clone(),
                capacity_range: capacity_range(required, limit),
                volume_capability: Some(vol.cap.clone()),
                ..Default::default()
            })
            .await
            .map(tonic::Response::into_inner)
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

    async fn create_snapshot(
        driver: &Driver,
        name: &str,
        source: &str,
    ) -> Result<Snapshot, tonic::Status> {
        driver
            .controller
            .controller
            .clone()
            .create_snapshot(CreateSnapshotRequest {
                source_volume_id: source.into(),
                name: name.into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().snapshot.expect("snapshot"))
    }

    async fn delete_snapshot(driver: &Driver, id: &str) {
        driver
            .controller
            .controller
            .clone()
            .delete_snapshot(DeleteSnapshotRequest {
                snapshot_id: id.into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("DeleteSnapshot {id}: {s:?}\n{}", driver.logs()));
    }

    async fn list_snapshots(
        driver: &Driver,
        req: ListSnapshotsRequest,
    ) -> Result<(Vec<Snapshot>, String), tonic::Status> {
        driver
            .controller
            .controller
            .clone()
            .list_snapshots(req)
            .await
            .map(|r| {
                let r = r.into_inner();
                (
                    r.entries.into_iter().filter_map(|e| e.snapshot).collect(),
                    r.next_token,
                )
            })
    }

    /// Total bytes of the mounted filesystem, as the node reports it (statvfs).
    async fn fs_total(driver: &Driver, vol: &Vol) -> i64 {
        let stats = driver
            .node
            .node
            .clone()
            .node_get_volume_stats(NodeGetVolumeStatsRequest {
                volume_id: vol.id.clone(),
                volume_path: vol.target.display().to_string(),
                staging_target_path: vol.staging.display().to_string(),
            })
            .await
            .unwrap_or_else(|s| panic!("NodeGetVolumeStats: {s:?}\n{}", driver.logs()))
            .into_inner();
        stats
            .usage
            .iter()
            .find(|u| u.unit == Unit::Bytes as i32)
            .expect("bytes usage")
            .total
    }

    fn lv_size(lab: &Lab, id: &str) -> i64 {
        let out = run_ok(
            "lvs",
            &[
                "--noheadings",
                "--nosuffix",
                "--units",
                "b",
                "-o",
                "lv_size",
                &format!("{}/{id}", lab.vg),
            ],
        );
        out.trim().parse().expect("lv_size in bytes")
    }

    fn lv_exists(lab: &Lab, id: &str) -> bool {
        run("lvs", &[&format!("{}/{id}", lab.vg)]).status.success()
    }

    fn device_size(path: &Path) -> i64 {
        let mut file = std::fs::File::open(path).expect("open device");
        file.seek(SeekFrom::End(0)).expect("seek to end") as i64
    }

    fn blkid(device: &Path, tag: &str) -> String {
        let out = run(
            "blkid",
            &["-p", "-o", "value", "-s", tag, &device.to_string_lossy()],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

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
                "data_services::{}: {:.1} s",
                self.0,
                self.1.elapsed().as_secs_f64()
            );
        }
    }

    // ---------------------------------------------------------------------------------------
    // Expansion

    /// Grows a mounted volume with ControllerExpandVolume + NodeExpandVolume while a reader
    /// checks the data; `thin_lv` chooses the LV kind (both lvextend paths are covered).
    async fn mounted_volume_expands(name: &str, size: i64, cap: VolumeCapability, thin_lv: bool) {
        let lab = Lab::from_env();
        let driver = Driver::start(&lab, DriverOptions::default()).await;
        let vol = provision(&driver, name, size, &cap, thin_lv, None).await;
        stage_publish(&driver, &driver.node, &vol).await;
        let file = vol.target.join("data.bin");
        let written = data::write_file(&file, DATA_LEN, 21);
        let before = fs_total(&driver, &vol).await;

        let stop = Arc::new(AtomicBool::new(false));
        let checks = reader(file.clone(), written.clone(), Arc::clone(&stop));
        // Not a whole number of extents: rounded up as at create (4 MiB extents).
        let required = vol.capacity + 62 * MIB;
        let grown = vol.capacity + 64 * MIB;
        let answer = controller_expand(&driver, &vol, required, 0)
            .await
            .unwrap_or_else(|s| panic!("ControllerExpandVolume: {s:?}\n{}", driver.logs()));
        assert_eq!(answer.capacity_bytes, grown);
        assert!(answer.node_expansion_required);
        assert_eq!(lv_size(&lab, &vol.id), grown);
        assert_eq!(node_expand(&driver, &vol, grown).await, grown);
        stop.store(true, Ordering::Relaxed);
        let (reads, bad) = checks.join().expect("reader");
        assert_eq!(
            bad, 0,
            "{bad} of {reads} reads saw other data while growing"
        );
        let after = fs_total(&driver, &vol).await;
        assert!(
            after >= before + 56 * MIB,
            "the filesystem grew online: {before} -> {after}"
        );

        // Idempotent; never shrinks.
        let again = controller_expand(&driver, &vol, required, 0).await.unwrap();
        assert_eq!(again.capacity_bytes, grown);
        let shrink = controller_expand(&driver, &vol, size, size)
            .await
            .expect_err("shrinking is refused");
        assert_eq!(shrink.code(), Code::OutOfRange, "{shrink:?}");
        assert_eq!(lv_size(&lab, &vol.id), grown);

        let more = data::write_file(&vol.target.join("more.bin"), 2 * DATA_LEN, 22);
        unpublish_unstage(&driver, &driver.node, &vol).await;
        stage_publish(&driver, &driver.node, &vol).await;
        assert_eq!(data::file_sha256(&file), written);
        assert_eq!(data::file_sha256(&vol.target.join("more.bin")), more);
        unpublish_unstage(&driver, &driver.node, &vol).await;
        retire(&driver, &vol, &lab.initiator).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn a_mounted_ext4_linear_volume_expands_online_with_its_data_intact() {
        let _timer =
            Timer::start("a_mounted_ext4_linear_volume_expands_online_with_its_data_intact");
        mounted_volume_expands("ds-grow-ext4", 64 * MIB, ext4(), false).await;
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn a_mounted_xfs_thin_volume_expands_online_with_its_data_intact() {
        let _timer = Timer::start("a_mounted_xfs_thin_volume_expands_online_with_its_data_intact");
        mounted_volume_expands("ds-grow-xfs", 320 * MIB, xfs(), true).await;
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn a_block_volume_expands_and_the_node_sees_its_new_size() {
        let _timer = Timer::start("a_block_volume_expands_and_the_node_sees_its_new_size");
        let lab = Lab::from_env();
        let driver = Driver::start(&lab, DriverOptions::default()).await;
        let vol = provision(&driver, "ds-grow-block", 32 * MIB, &block(), true, None).await;
        stage_publish(&driver, &driver.node, &vol).await;
        let len = 4 * MIB as usize;
        let written = data::write_device(&vol.target, len, 31);
        assert_eq!(device_size(&vol.target), vol.capacity);

        let answer = controller_expand(&driver, &vol, vol.capacity + 32 * MIB, 0)
            .await
            .unwrap_or_else(|s| panic!("ControllerExpandVolume: {s:?}\n{}", driver.logs()));
        let grown = vol.capacity + 32 * MIB;
        assert_eq!(answer.capacity_bytes, grown);
        assert!(
            answer.node_expansion_required,
            "the node rescans block volumes too"
        );
        assert_eq!(node_expand(&driver, &vol, grown).await, grown);
        assert_eq!(
            device_size(&vol.target),
            grown,
            "the pod's device shows the new size"
        );
        assert_eq!(data::device_sha256(&vol.target, len), written);

        unpublish_unstage(&driver, &driver.node, &vol).await;
        retire(&driver, &vol, &lab.initiator).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    // ---------------------------------------------------------------------------------------
    // Snapshots and restores

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn a_restore_holds_exactly_the_snapshot_data_not_later_writes() {
        let _timer = Timer::start("a_restore_holds_exactly_the_snapshot_data_not_later_writes");
        let lab = Lab::from_env();
        let driver = Driver::start(&lab, DriverOptions::default()).await;
        let source = provision(&driver, "ds-snap-src", 64 * MIB, &ext4(), true, None).await;
        stage_publish(&driver, &driver.node, &source).await;
        let file = source.target.join("data.bin");
        let at_snapshot = data::write_file(&file, DATA_LEN, 51);

        // Cut while mounted (crash-consistent; the data was fsynced).
        let snap = create_snapshot(&driver, "ds-snap-1", &source.id)
            .await
            .unwrap_or_else(|s| panic!("CreateSnapshot: {s:?}\n{}", driver.logs()));
        assert!(snap.snapshot_id.starts_with("snap-"), "{snap:?}");
        assert_eq!(snap.source_volume_id, source.id);
        assert_eq!(snap.size_bytes, source.capacity);
        assert!(snap.ready_to_use);
        assert!(
            snap.creation_time
                .is_some_and(|t| t.seconds > 1_700_000_000)
        );
        // Idempotent by name; the same name for another source is ALREADY_EXISTS.
        let again = create_snapshot(&driver, "ds-snap-1", &source.id)
            .await
            .unwrap();
        assert_eq!(again, snap);
        let other = create_snapshot(&driver, "ds-snap-1", "csi-other-0123")
            .await
            .expect_err("another source");
        assert_eq!(other.code(), Code::AlreadyExists, "{other:?}");

        // Later writes: overwrite the file, add another.
        let later = data::write_file(&file, DATA_LEN, 52);
        assert_ne!(later, at_snapshot);
        data::write_file(&source.target.join("later.bin"), MIB as usize, 53);

        // Restore, 32 MiB larger than the snapshot.
        let restored = provision(
            &driver,
            "ds-snap-restored",
            source.capacity + 32 * MIB,
            &ext4(),
            true,
            Some(from_snapshot(&snap.snapshot_id)),
        )
        .await;
        assert_eq!(restored.capacity, source.capacity + 32 * MIB);
        assert_eq!(
            restored.context["contentSource"],
            format!("snapshot:{}", snap.snapshot_id)
        );
        stage_publish(&driver, &driver.node, &restored).await;
        assert_eq!(
            data::file_sha256(&restored.target.join("data.bin")),
            at_snapshot,
            "the restore holds the snapshot's data"
        );
        assert!(
            !restored.target.join("later.bin").exists(),
            "and none of the later writes"
        );
        assert_eq!(
            data::file_sha256(&file),
            later,
            "the source kept its own data"
        );
        // The disk has the requested size and NodeStage alone grew the filesystem to fill it
        // (no CO calls NodeExpandVolume for a larger restore); NodeExpandVolume is then a no-op.
        let source_fs = fs_total(&driver, &source).await;
        let restored_fs = fs_total(&driver, &restored).await;
        assert!(
            restored_fs >= source_fs + 28 * MIB,
            "the restored fs fills its larger disk: source {source_fs}, restore {restored_fs}"
        );
        assert_eq!(
            node_expand(&driver, &restored, restored.capacity).await,
            restored.capacity
        );
        assert_eq!(fs_total(&driver, &restored).await, restored_fs);

        // A smaller restore than the snapshot is OUT_OF_RANGE; an unknown snapshot NOT_FOUND.
        let mut small = CreateVolumeRequest {
            name: "ds-snap-small".into(),
            capacity_range: capacity_range(16 * MIB, 16 * MIB),
            volume_capabilities: vec![ext4()],
            parameters: thin(true),
            volume_content_source: Some(from_snapshot(&snap.snapshot_id)),
            ..Default::default()
        };
        let mut controller = driver.controller.controller.clone();
        let err = controller.create_volume(small.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
        small.capacity_range = None;
        small.volume_content_source = Some(from_snapshot("snap-nope-000000000000000000000000"));
        let err = controller.create_volume(small).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{err:?}");

        unpublish_unstage(&driver, &driver.node, &restored).await;
        unpublish_unstage(&driver, &driver.node, &source).await;
        retire(&driver, &restored, &lab.initiator).await;
        retire(&driver, &source, &lab.initiator).await;
        delete_snapshot(&driver, &snap.snapshot_id).await;
        delete_snapshot(&driver, &snap.snapshot_id).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn deleting_a_source_keeps_its_snapshots_usable() {
        let _timer = Timer::start("deleting_a_source_keeps_its_snapshots_usable");
        let lab = Lab::from_env();
        let driver = Driver::start(&lab, DriverOptions::default()).await;
        let source = provision(&driver, "ds-del-src", 64 * MIB, &ext4(), true, None).await;
        stage_publish(&driver, &driver.node, &source).await;
        let written = data::write_file(&source.target.join("data.bin"), DATA_LEN, 61);
        let first = create_snapshot(&driver, "ds-del-snap-a", &source.id)
            .await
            .unwrap();
        let second = create_snapshot(&driver, "ds-del-snap-b", &source.id)
            .await
            .unwrap();
        unpublish_unstage(&driver, &driver.node, &source).await;

        // Documented behaviour: the source is deleted; its thin snapshots survive.
        retire(&driver, &source, &lab.initiator).await;
        assert!(!lv_exists(&lab, &source.id), "the source LV is gone");
        let (listed, next) = list_snapshots(
            &driver,
            ListSnapshotsRequest {
                source_volume_id: source.id.clone(),
                max_entries: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let mut ids = [first.snapshot_id.clone(), second.snapshot_id.clone()];
        ids.sort();
        assert_eq!(listed.len(), 1, "max_entries");
        assert_eq!(listed[0].snapshot_id, ids[0]);
        assert_eq!(next, ids[1]);
        let (rest, next) = list_snapshots(
            &driver,
            ListSnapshotsRequest {
                source_volume_id: source.id.clone(),
                starting_token: next,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!((rest.len(), next.as_str()), (1, ""));
        assert!(rest[0].ready_to_use);
        let bad = list_snapshots(
            &driver,
            ListSnapshotsRequest {
                starting_token: "not a token".into(),
                ..Default::default()
            },
        )
        .await
        .expect_err("bad token");
        assert_eq!(bad.code(), Code::Aborted);
        let got = driver
            .controller
            .controller
            .clone()
            .get_snapshot(GetSnapshotRequest {
                snapshot_id: first.snapshot_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .snapshot
            .unwrap();
        assert_eq!(got, first);

        // Still a working source: a restore holds the data.
        let restored = provision(
            &driver,
            "ds-del-restored",
            0,
            &ext4(),
            true,
            Some(from_snapshot(&first.snapshot_id)),
        )
        .await;
        assert_eq!(
            restored.capacity, first.size_bytes,
            "no range: the snapshot's size"
        );
        stage_publish(&driver, &driver.node, &restored).await;
        assert_eq!(
            data::file_sha256(&restored.target.join("data.bin")),
            written
        );
        // Deleting the snapshot under a live restore is allowed and leaves the restore intact.
        delete_snapshot(&driver, &first.snapshot_id).await;
        assert_eq!(
            data::file_sha256(&restored.target.join("data.bin")),
            written
        );
        unpublish_unstage(&driver, &driver.node, &restored).await;
        retire(&driver, &restored, &lab.initiator).await;
        delete_snapshot(&driver, &second.snapshot_id).await;
        let (left, _) = list_snapshots(&driver, ListSnapshotsRequest::default())
            .await
            .unwrap();
        assert!(left.is_empty(), "{left:?}");
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn a_snapshot_of_a_linear_volume_is_refused_clearly() {
        let _timer = Timer::start("a_snapshot_of_a_linear_volume_is_refused_clearly");
        let lab = Lab::from_env();
        let driver = Driver::start(&lab, DriverOptions::default()).await;
        let vol = create(&driver, "ds-linear", 32 * MIB, &ext4(), false, None)
            .await
            .unwrap();
        let err = create_snapshot(&driver, "ds-linear-snap", &vol.id)
            .await
            .expect_err("linear");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("thin"), "{}", err.message());
        let err = create(
            &driver,
            "ds-linear-clone",
            32 * MIB,
            &ext4(),
            true,
            Some(from_volume(&vol.id)),
        )
        .await
        .err()
        .expect("linear clone refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        delete_volume(&driver, &vol.id).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    // ---------------------------------------------------------------------------------------
    // Clones

    /// A second csi-node on this machine that logs in as the lab's second initiator through
    /// its iscsiadm iface: "another node" in a one-machine lab. A panic kills it (Drop).
    struct SecondNode {
        child: Child,
        client: Option<Client>,
    }

    impl SecondNode {
        async fn start(driver: &Driver) -> Self {
            let dir = driver.dir.path();
            let socket = dir.join("node2.sock");
            let log = std::fs::File::create(dir.join("node2.log")).expect("node2 log");
            let child = Command::new("csi-node")
                .arg("--endpoint")
                .arg(format!("unix://{}", socket.display()))
                .arg("--state-dir")
                .arg(dir.join("node2-state"))
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
            }
        }

        fn client(&self) -> &Client {
            self.client.as_ref().expect("running")
        }

        /// SIGTERM, then waits without blocking the runtime (the client goes first: the
        /// plugin's graceful shutdown needs this side of the connection).
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
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn a_clone_on_another_node_is_independent_of_its_source() {
        let _timer = Timer::start("a_clone_on_another_node_is_independent_of_its_source");
        let lab = Lab::from_env();
        let driver = Driver::start(&lab, DriverOptions::default()).await;
        let source = provision(&driver, "ds-clone-src", 64 * MIB, &ext4(), true, None).await;
        stage_publish(&driver, &driver.node, &source).await;
        let written = data::write_file(&source.target.join("data.bin"), DATA_LEN, 71);

        // Cloned while the source is mounted and in use on node1; staged on node2.
        let mut clone = create(
            &driver,
            "ds-clone",
            0,
            &ext4(),
            true,
            Some(from_volume(&source.id)),
        )
        .await
        .unwrap_or_else(|s| panic!("CreateVolume clone: {s:?}\n{}", driver.logs()));
        assert_eq!(clone.capacity, source.capacity);
        assert_eq!(
            clone.context["contentSource"],
            format!("volume:{}", source.id)
        );
        let node2 = SecondNode::start(&driver).await;
        controller_publish(&driver, &mut clone, &lab.initiator2).await;
        stage_publish(&driver, node2.client(), &clone).await;
        assert_eq!(
            data::file_sha256(&clone.target.join("data.bin")),
            written,
            "the clone holds the source's data"
        );
        // Writes to one never show in the other.
        let clone_only = data::write_file(&clone.target.join("clone-only.bin"), MIB as usize, 72);
        let source_only =
            data::write_file(&source.target.join("source-only.bin"), MIB as usize, 73);
        data::write_file(&clone.target.join("data.bin"), DATA_LEN, 74);
        assert!(!source.target.join("clone-only.bin").exists());
        assert!(!clone.target.join("source-only.bin").exists());
        assert_eq!(data::file_sha256(&source.target.join("data.bin")), written);

        // Across a restage (the page cache dropped), both still hold only their own writes.
        unpublish_unstage(&driver, node2.client(), &clone).await;
        unpublish_unstage(&driver, &driver.node, &source).await;
        stage_publish(&driver, node2.client(), &clone).await;
        stage_publish(&driver, &driver.node, &source).await;
        assert_eq!(
            data::file_sha256(&clone.target.join("clone-only.bin")),
            clone_only
        );
        assert_eq!(
            data::file_sha256(&source.target.join("source-only.bin")),
            source_only
        );
        assert_eq!(data::file_sha256(&source.target.join("data.bin")), written);
        assert!(!source.target.join("clone-only.bin").exists());

        unpublish_unstage(&driver, node2.client(), &clone).await;
        node2.stop().await;
        unpublish_unstage(&driver, &driver.node, &source).await;
        retire(&driver, &clone, &lab.initiator2).await;
        retire(&driver, &source, &lab.initiator).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }

    #[tokio::test]
    #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
    async fn an_xfs_restore_mounts_beside_its_still_mounted_source() {
        let _timer = Timer::start("an_xfs_restore_mounts_beside_its_still_mounted_source");
        let lab = Lab::from_env();
        let driver = Driver::start(&lab, DriverOptions::default()).await;
        let source = provision(&driver, "ds-xfs-src", 320 * MIB, &xfs(), true, None).await;
        stage_publish(&driver, &driver.node, &source).await;
        let written = data::write_file(&source.target.join("data.bin"), DATA_LEN, 81);
        let snap = create_snapshot(&driver, "ds-xfs-snap", &source.id)
            .await
            .unwrap();
        let restored = provision(
            &driver,
            "ds-xfs-restored",
            0,
            &xfs(),
            true,
            Some(from_snapshot(&snap.snapshot_id)),
        )
        .await;
        let uuid = blkid(&source.lv(&lab), "UUID");
        assert!(!uuid.is_empty());
        assert_eq!(blkid(&restored.lv(&lab), "UUID"), uuid, "same XFS UUID");

        stage_publish(&driver, &driver.node, &restored).await;
        assert_eq!(
            data::file_sha256(&restored.target.join("data.bin")),
            written
        );
        data::write_file(&restored.target.join("restored-only.bin"), MIB as usize, 82);
        assert!(!source.target.join("restored-only.bin").exists());
        assert_eq!(data::file_sha256(&source.target.join("data.bin")), written);

        unpublish_unstage(&driver, &driver.node, &restored).await;
        unpublish_unstage(&driver, &driver.node, &source).await;
        retire(&driver, &restored, &lab.initiator).await;
        retire(&driver, &source, &lab.initiator).await;
        delete_snapshot(&driver, &snap.snapshot_id).await;
        assert_no_leaks(&lab, Some(driver.dir.path()));
    }
}
