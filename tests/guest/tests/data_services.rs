//! Guest tier, data services through the real controller and node plugins: online expansion
//! (ControllerExpandVolume + NodeExpandVolume) of mounted ext4 and XFS volumes while a reader
//! checks the data, and of a block volume; snapshot, write more, restore (the restore holds
//! exactly the snapshot's data); deleting a source that has snapshots (allowed: thin snapshots
//! are independent, and they stay usable); a snapshot of a linear volume refused. Clones and
//! restores beside their source are in clones.rs. Every scenario ends with leak accounting.

mod data_services {
    use carve_guest_tests::{Driver, checksum, guest_test, scenario, storage::*, volume::*};
    use carvectl::request::{capacity_range, from_snapshot};
    use csi_proto::v1::{
        CreateVolumeRequest, DeleteSnapshotRequest, GetSnapshotRequest, ListSnapshotsRequest,
        Snapshot, VolumeCapability,
    };
    use tonic::Code;

    async fn list_snapshots(
        driver: &Driver,
        req: ListSnapshotsRequest,
    ) -> Result<(Vec<Snapshot>, String), tonic::Status> {
        driver.controller_rpc().list_snapshots(req).await.map(|r| {
            let r = r.into_inner();
            (
                r.entries.into_iter().filter_map(|e| e.snapshot).collect(),
                r.next_token,
            )
        })
    }

    // ---------------------------------------------------------------------------------------
    // Expansion

    /// Grows a mounted volume with ControllerExpandVolume + NodeExpandVolume while a reader
    /// checks the data; `thin_lv` chooses the LV kind (both lvextend paths are covered).
    async fn mounted_volume_expands(
        test: &'static str,
        name: &str,
        size: i64,
        cap: VolumeCapability,
        thin_lv: bool,
    ) {
        scenario(test, async |driver| {
            let (vol, written) =
                provision_with_data(driver, Spec::new(name, size, cap).thin(thin_lv), 21).await;
            let before = fs_total(driver, &vol).await;

            let reader = checksum::Reader::start(vol.target.join("data.bin"), written.clone());
            // Not a whole number of extents: rounded up as at create (4 MiB extents).
            let required = vol.capacity + 62 * MIB;
            let grown = vol.capacity + 64 * MIB;
            let answer = controller_expand(driver, &vol, required, 0)
                .await
                .unwrap_or_else(|s| panic!("ControllerExpandVolume: {s:?}\n{}", driver.logs()));
            assert_eq!(answer.capacity_bytes, grown);
            assert!(answer.node_expansion_required);
            assert_eq!(lv_size(&driver.lab, &vol.id), grown);
            assert_eq!(node_expand(driver, &vol, grown).await, grown);
            reader.assert_all_read_alike();
            let after = fs_total(driver, &vol).await;
            assert!(
                after >= before + 56 * MIB,
                "the filesystem grew online: {before} -> {after}"
            );

            // Idempotent; never shrinks.
            let again = controller_expand(driver, &vol, required, 0).await.unwrap();
            assert_eq!(again.capacity_bytes, grown);
            let shrink = controller_expand(driver, &vol, size, size)
                .await
                .expect_err("shrinking is refused");
            assert_eq!(shrink.code(), Code::OutOfRange, "{shrink:?}");
            assert_eq!(lv_size(&driver.lab, &vol.id), grown);

            grown_keeps_data(driver, &vol, &written).await;
        })
        .await;
    }

    guest_test!(
        a_mounted_ext4_linear_volume_expands_online_with_its_data_intact,
        async {
            mounted_volume_expands(
                "data_services::a_mounted_ext4_linear_volume_expands_online_with_its_data_intact",
                "ds-grow-ext4",
                64 * MIB,
                ext4(),
                false,
            )
            .await;
        }
    );

    guest_test!(
        a_mounted_xfs_thin_volume_expands_online_with_its_data_intact,
        async {
            mounted_volume_expands(
                "data_services::a_mounted_xfs_thin_volume_expands_online_with_its_data_intact",
                "ds-grow-xfs",
                320 * MIB,
                xfs(),
                true,
            )
            .await;
        }
    );

    guest_test!(
        a_block_volume_expands_and_the_node_sees_its_new_size,
        async |driver| {
            let (vol, written) = provision_block_with_data(driver, "ds-grow-block", 31).await;

            let answer = controller_expand(driver, &vol, vol.capacity + 32 * MIB, 0)
                .await
                .unwrap_or_else(|s| panic!("ControllerExpandVolume: {s:?}\n{}", driver.logs()));
            let grown = vol.capacity + 32 * MIB;
            assert_eq!(answer.capacity_bytes, grown);
            assert!(
                answer.node_expansion_required,
                "the node rescans block volumes too"
            );
            assert_eq!(node_expand(driver, &vol, grown).await, grown);
            assert_eq!(
                device_size(&vol.target),
                grown,
                "the pod's device shows the new size"
            );
            assert_eq!(
                checksum::device_sha256(&vol.target, BLOCK_DATA_LEN),
                written
            );

            teardown(driver, &vol).await;
        }
    );

    // ---------------------------------------------------------------------------------------
    // Snapshots and restores

    guest_test!(
        a_restore_holds_exactly_the_snapshot_data_not_later_writes,
        async |driver| {
            let (source, at_snapshot) =
                provision_with_data(driver, Spec::new("ds-snap-src", 64 * MIB, ext4()), 51).await;
            let file = source.target.join("data.bin");

            // Cut while mounted (crash-consistent; the data was fsynced).
            let snap = snapshot(driver, "ds-snap-1", &source).await;
            assert!(snap.snapshot_id.starts_with("snap-"), "{snap:?}");
            assert_eq!(snap.source_volume_id, source.id);
            assert_eq!(snap.size_bytes, source.capacity);
            assert!(snap.ready_to_use);
            assert!(
                snap.creation_time
                    .is_some_and(|t| t.seconds > 1_700_000_000)
            );
            // Idempotent by name; the same name for another source is ALREADY_EXISTS.
            let again = snapshot(driver, "ds-snap-1", &source).await;
            assert_eq!(again, snap);
            let other = create_snapshot(driver, "ds-snap-1", "csi-other-0123")
                .await
                .expect_err("another source");
            assert_eq!(other.code(), Code::AlreadyExists, "{other:?}");

            // Later writes: overwrite the file, add another.
            let later = checksum::write_file(&file, DATA_LEN, 52);
            assert_ne!(later, at_snapshot);
            checksum::write_file(&source.target.join("later.bin"), MIB_LEN, 53);

            // Restore, 32 MiB larger than the snapshot.
            let restored = Spec::new("ds-snap-restored", source.capacity + 32 * MIB, ext4());
            let restored = provision(driver, restored.restore_of(&snap)).await;
            assert_eq!(restored.capacity, source.capacity + 32 * MIB);
            assert_eq!(
                restored.context["contentSource"],
                format!("snapshot:{}", snap.snapshot_id)
            );
            stage_publish(driver, &driver.node, &restored).await;
            assert_eq!(
                checksum::file_sha256(&restored.target.join("data.bin")),
                at_snapshot,
                "the restore holds the snapshot's data"
            );
            assert!(
                !restored.target.join("later.bin").exists(),
                "and none of the later writes"
            );
            assert_eq!(
                checksum::file_sha256(&file),
                later,
                "the source kept its own data"
            );
            // The disk has the requested size and NodeStage alone grew the filesystem to fill it
            // (no CO calls NodeExpandVolume for a larger restore); NodeExpandVolume is then a no-op.
            let source_fs = fs_total(driver, &source).await;
            let restored_fs = fs_total(driver, &restored).await;
            assert!(
                restored_fs >= source_fs + 28 * MIB,
                "the restored fs fills its larger disk: source {source_fs}, restore {restored_fs}"
            );
            assert_eq!(
                node_expand(driver, &restored, restored.capacity).await,
                restored.capacity
            );
            assert_eq!(fs_total(driver, &restored).await, restored_fs);

            // A smaller restore than the snapshot is OUT_OF_RANGE; an unknown snapshot NOT_FOUND.
            let mut small = CreateVolumeRequest {
                name: "ds-snap-small".into(),
                capacity_range: capacity_range(16 * MIB, 16 * MIB),
                volume_capabilities: vec![ext4()],
                parameters: thin(true),
                volume_content_source: Some(from_snapshot(&snap.snapshot_id)),
                ..Default::default()
            };
            let mut controller = driver.controller_rpc();
            let err = controller.create_volume(small.clone()).await.unwrap_err();
            assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
            small.capacity_range = None;
            small.volume_content_source = Some(from_snapshot("snap-nope-000000000000000000000000"));
            let err = controller.create_volume(small).await.unwrap_err();
            assert_eq!(err.code(), Code::NotFound, "{err:?}");

            teardown_all(driver, &[&restored, &source]).await;
            let delete = DeleteSnapshotRequest {
                snapshot_id: snap.snapshot_id.clone(),
                ..Default::default()
            };
            driver
                .twice("DeleteSnapshot", delete, async |r| {
                    controller.delete_snapshot(r).await
                })
                .await;
        }
    );

    guest_test!(
        deleting_a_source_keeps_its_snapshots_usable,
        async |driver| {
            let (source, written) =
                provision_with_data(driver, Spec::new("ds-del-src", 64 * MIB, ext4()), 61).await;
            let first = snapshot(driver, "ds-del-snap-a", &source).await;
            let second = snapshot(driver, "ds-del-snap-b", &source).await;
            unpublish_unstage(driver, &driver.node, &source).await;

            // Documented behaviour: the source is deleted; its thin snapshots survive.
            retire(driver, &source, &driver.lab.initiator).await;
            assert!(!lv_exists(&driver.lab, &source.id), "the source LV is gone");
            let (listed, next) = list_snapshots(
                driver,
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
                driver,
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
                driver,
                ListSnapshotsRequest {
                    starting_token: "not a token".into(),
                    ..Default::default()
                },
            )
            .await
            .expect_err("bad token");
            assert_eq!(bad.code(), Code::Aborted);
            let got = driver
                .controller_rpc()
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
            let restored = Spec::new("ds-del-restored", 0, ext4()).restore_of(&first);
            let restored = provision(driver, restored).await;
            assert_eq!(
                restored.capacity, first.size_bytes,
                "no range: the snapshot's size"
            );
            stage_publish(driver, &driver.node, &restored).await;
            assert_eq!(
                checksum::file_sha256(&restored.target.join("data.bin")),
                written
            );
            // Deleting the snapshot under a live restore is allowed and leaves the restore intact.
            delete_snapshot(driver, &first).await;
            assert_eq!(
                checksum::file_sha256(&restored.target.join("data.bin")),
                written
            );
            teardown(driver, &restored).await;
            delete_snapshot(driver, &second).await;
            let (left, _) = list_snapshots(driver, ListSnapshotsRequest::default())
                .await
                .unwrap();
            assert!(left.is_empty(), "{left:?}");
        }
    );

    guest_test!(
        a_snapshot_of_a_linear_volume_is_refused_clearly,
        async |driver| {
            let linear = Spec::new("ds-linear", 32 * MIB, ext4()).thin(false);
            let vol = create(driver, &linear).await.unwrap();
            let err = create_snapshot(driver, "ds-linear-snap", &vol.id)
                .await
                .expect_err("linear");
            assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
            assert!(err.message().contains("thin"), "{}", err.message());
            let clone = Spec::new("ds-linear-clone", 32 * MIB, ext4()).clone_of(&vol);
            let err = create(driver, &clone)
                .await
                .expect_err("linear clone refused");
            assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
            delete_volume(driver, &vol.id).await;
        }
    );
}
