//! Guest tier, clones and restores beside their source, through the real controller and node
//! plugins: a clone independent of its source and staged on another node (writes to one never
//! show in the other, across a restage); an XFS restore mounted beside its still-mounted source
//! (duplicate UUID). Every scenario ends with leak accounting.

mod clones {
    use carve_guest_tests::{checksum, guest_test, second_node::SecondNode, storage::*, volume::*};
    use std::collections::HashMap;

    // ---------------------------------------------------------------------------------------
    // Clones

    guest_test!(
        a_clone_on_another_node_is_independent_of_its_source,
        async |driver| {
            let (source, written) =
                provision_with_data(driver, Spec::new("ds-clone-src", 64 * MIB, ext4()), 71).await;

            // Cloned while the source is mounted and in use on node1; staged on node2.
            let mut clone = create(driver, &Spec::new("ds-clone", 0, ext4()).clone_of(&source))
                .await
                .unwrap_or_else(|s| panic!("CreateVolume clone: {s:?}\n{}", driver.logs()));
            assert_eq!(clone.capacity, source.capacity);
            assert_eq!(
                clone.context["contentSource"],
                format!("volume:{}", source.id)
            );
            let node2 = SecondNode::start(driver).await;
            clone.publish =
                controller_publish(driver, &clone, &driver.lab.initiator2, HashMap::new()).await;
            stage_publish(driver, node2.client(), &clone).await;
            assert_eq!(
                checksum::file_sha256(&clone.target.join("data.bin")),
                written,
                "the clone holds the source's data"
            );
            // Writes to one never show in the other.
            let clone_only =
                checksum::write_file(&clone.target.join("clone-only.bin"), MIB_LEN, 72);
            let source_only =
                checksum::write_file(&source.target.join("source-only.bin"), MIB_LEN, 73);
            checksum::write_file(&clone.target.join("data.bin"), DATA_LEN, 74);
            assert!(!source.target.join("clone-only.bin").exists());
            assert!(!clone.target.join("source-only.bin").exists());
            assert_eq!(
                checksum::file_sha256(&source.target.join("data.bin")),
                written
            );

            // Across a restage (the page cache dropped), both still hold only their own writes.
            unpublish_unstage(driver, node2.client(), &clone).await;
            unpublish_unstage(driver, &driver.node, &source).await;
            stage_publish(driver, node2.client(), &clone).await;
            stage_publish(driver, &driver.node, &source).await;
            assert_eq!(
                checksum::file_sha256(&clone.target.join("clone-only.bin")),
                clone_only
            );
            assert_eq!(
                checksum::file_sha256(&source.target.join("source-only.bin")),
                source_only
            );
            assert_eq!(
                checksum::file_sha256(&source.target.join("data.bin")),
                written
            );
            assert!(!source.target.join("clone-only.bin").exists());

            unpublish_unstage(driver, node2.client(), &clone).await;
            node2.stop().await;
            unpublish_unstage(driver, &driver.node, &source).await;
            retire(driver, &clone, &driver.lab.initiator2).await;
            retire(driver, &source, &driver.lab.initiator).await;
        }
    );

    guest_test!(
        an_xfs_restore_mounts_beside_its_still_mounted_source,
        async |driver| {
            let (source, written) =
                provision_with_data(driver, Spec::new("ds-xfs-src", 320 * MIB, xfs()), 81).await;
            let snap = snapshot(driver, "ds-xfs-snap", &source).await;
            let restored = Spec::new("ds-xfs-restored", 0, xfs()).restore_of(&snap);
            let restored = provision(driver, restored).await;
            let uuid = blkid(&source.lv, "UUID");
            assert!(!uuid.is_empty());
            assert_eq!(blkid(&restored.lv, "UUID"), uuid, "same XFS UUID");

            stage_publish(driver, &driver.node, &restored).await;
            assert_eq!(
                checksum::file_sha256(&restored.target.join("data.bin")),
                written
            );
            checksum::write_file(&restored.target.join("restored-only.bin"), MIB_LEN, 82);
            assert!(!source.target.join("restored-only.bin").exists());
            assert_eq!(
                checksum::file_sha256(&source.target.join("data.bin")),
                written
            );

            teardown_all(driver, &[&restored, &source]).await;
            delete_snapshot(driver, &snap).await;
        }
    );
}
