//! Guest tier, the node's side of a disk that changes under it: NodeExpandVolume online for
//! ext4, XFS and block while a reader checks the data, after the LV grew on the storage side
//! (`lvextend`, as an operator or ControllerExpandVolume would; data_services.rs drives the
//! whole ControllerExpandVolume path), and an XFS clone (the source copied block for block while
//! mounted: the same bytes, the same XFS UUID, a log that may need replaying) staged beside its
//! source. Every scenario ends with leak accounting.

mod node_growth {
    use carve_guest_tests::{Lab, checksum, guest_test, run_ok, scenario, storage::*, volume::*};
    use csi_proto::v1::{VolumeCapability, volume_usage::Unit};
    use std::{
        io::{Read, Write},
        path::Path,
    };

    // ---------------------------------------------------------------------------------------
    // Online expansion

    /// Grows `vol`'s LV by 64 MiB on the storage side, as an operator would; its new size.
    fn lvextend(lab: &Lab, vol: &Vol) -> i64 {
        run_ok(
            "lvextend",
            &["-L", "+64M", &format!("{}/{}", lab.vg, vol.id)],
        );
        lv_size(lab, &vol.id)
    }

    async fn mounted_volume_grows_online(
        test: &'static str,
        name: &str,
        size: i64,
        cap: VolumeCapability,
    ) {
        scenario(test, async |driver| {
            let (vol, written) = provision_with_data(driver, Spec::new(name, size, cap), 21).await;
            let before = fs_total(driver, &vol).await;

            let reader = checksum::Reader::start(vol.target.join("data.bin"), written.clone());
            let grown = lvextend(&driver.lab, &vol);
            assert_eq!(grown, vol.capacity + 64 * MIB);
            assert_eq!(node_expand(driver, &vol, grown).await, grown);
            assert_eq!(node_expand(driver, &vol, grown).await, grown, "idempotent");
            reader.assert_all_read_alike();

            let (after, _, available) =
                usage(&stats(driver, vol.stats(&vol.target)).await, Unit::Bytes);
            assert!(
                after >= before + 56 * MIB,
                "the filesystem grew online: {before} -> {after}"
            );
            // The new space is usable.
            assert!(available > 56 * MIB);
            grown_keeps_data(driver, &vol, &written).await;
        })
        .await;
    }

    guest_test!(ext4_grows_online_while_a_reader_checks_the_data, async {
        mounted_volume_grows_online(
            "node_growth::ext4_grows_online_while_a_reader_checks_the_data",
            "node-grow-ext4",
            64 * MIB,
            ext4(),
        )
        .await;
    });

    guest_test!(xfs_grows_online_while_a_reader_checks_the_data, async {
        mounted_volume_grows_online(
            "node_growth::xfs_grows_online_while_a_reader_checks_the_data",
            "node-grow-xfs",
            320 * MIB,
            xfs(),
        )
        .await;
    });

    guest_test!(
        a_block_volume_shows_its_new_size_after_expansion,
        async |driver| {
            let (vol, written) = provision_block_with_data(driver, "node-grow-block", 31).await;

            let grown = lvextend(&driver.lab, &vol);
            assert_eq!(node_expand(driver, &vol, grown).await, grown);
            assert_eq!(
                device_size(&vol.target),
                grown,
                "the pod's device shows the new size"
            );
            let now = stats(driver, vol.stats(&vol.target)).await;
            assert_eq!(usage(&now, Unit::Bytes).0, grown);
            assert_eq!(
                checksum::device_sha256(&vol.target, BLOCK_DATA_LEN),
                written
            );

            teardown(driver, &vol).await;
        }
    );

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
        let mut buf = vec![0u8; 4 * MIB_LEN];
        loop {
            let n = src.read(&mut buf).expect("read source LV");
            if n == 0 {
                break;
            }
            dst.write_all(&buf[..n]).expect("write clone LV");
        }
        dst.sync_all().expect("fsync clone LV");
    }

    guest_test!(
        an_xfs_clone_stages_beside_its_mounted_source,
        async |driver| {
            let source = provision(driver, Spec::new("node-xfs-source", 320 * MIB, xfs())).await;
            let clone = provision(driver, Spec::new("node-xfs-clone", 320 * MIB, xfs())).await;
            assert_eq!(source.capacity, clone.capacity);
            stage_publish(driver, &driver.node, &source).await;
            let written = checksum::write_file(&source.target.join("data.bin"), DATA_LEN, 41);

            // A crash-consistent copy of the mounted source, as a snapshot would be.
            copy_device(&source.lv, &clone.lv);
            let uuid = blkid(&source.lv, "UUID");
            assert!(!uuid.is_empty());
            assert_eq!(
                blkid(&clone.lv, "UUID"),
                uuid,
                "the clone has the same UUID"
            );

            stage_publish(driver, &driver.node, &clone).await;
            assert_eq!(
                checksum::file_sha256(&clone.target.join("data.bin")),
                written,
                "the clone holds the source's data"
            );
            checksum::write_file(&clone.target.join("clone-only.bin"), MIB_LEN, 42);
            assert!(
                !source.target.join("clone-only.bin").exists(),
                "the clone is independent of its source"
            );
            assert_eq!(
                checksum::file_sha256(&source.target.join("data.bin")),
                written
            );

            teardown_all(driver, &[&clone, &source]).await;
        }
    );
}
