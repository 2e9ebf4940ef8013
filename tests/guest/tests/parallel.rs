//! Guest tier, many volumes at once on one node: kubelet stages and unstages each volume on a
//! goroutine of its own (a node drain unstages everything together), so 8 NodeStage +
//! NodePublish run at once, each volume keeps its own data, then 8 NodeUnpublish + NodeUnstage
//! run at once. iscsiadm walks its node database without a lock, and records created and
//! deleted side by side once failed 18 of 20 unstages ("iface iter could not stat"): every
//! call must succeed and nothing may be left.

mod parallel {
    use carve_guest_tests::{
        Driver, DriverOptions, Lab, Timer, assert_no_leaks, checksum, guest_test, volume::*,
    };
    use std::sync::Arc;
    use tokio::task::JoinSet;

    const VOLUMES: usize = 8;

    guest_test!(eight_volumes_stage_and_unstage_at_once_on_one_node, async {
        let lab = Lab::from_env();
        let driver = Arc::new(Driver::start(&lab, DriverOptions::default()).await);
        let _t = Timer::start("parallel: 8 volumes");
        let mut vols = Vec::new();
        for n in 0..VOLUMES {
            let spec = Spec::new(&format!("parallel-{n}"), 16 * MIB, ext4());
            vols.push(provision(&driver, spec).await);
        }

        let mut calls = JoinSet::new();
        for (n, vol) in vols.iter().cloned().enumerate() {
            let driver = Arc::clone(&driver);
            calls.spawn(async move {
                stage_publish(&driver, &driver.node, &vol).await;
                let sum = checksum::write_file(&vol.target.join("data.bin"), MIB_LEN, n as u64);
                (n, sum)
            });
        }
        let mut sums = vec![String::new(); VOLUMES];
        while let Some(done) = calls.join_next().await {
            let (n, sum) = done.expect("stage task");
            sums[n] = sum;
        }
        for (n, vol) in vols.iter().enumerate() {
            assert_eq!(
                checksum::file_sha256(&vol.target.join("data.bin")),
                sums[n],
                "volume {n} holds its own data"
            );
        }

        let mut calls = JoinSet::new();
        for vol in &vols {
            let (driver, vol) = (Arc::clone(&driver), vol.clone());
            calls.spawn(async move { unpublish_unstage(&driver, &driver.node, &vol).await });
        }
        while let Some(done) = calls.join_next().await {
            done.expect("unstage task");
        }
        for vol in &vols {
            retire(&driver, vol, &driver.lab.initiator).await;
        }
        drop(calls);
        let driver = Arc::into_inner(driver).expect("no task holds the driver");
        drop(driver);
        assert_no_leaks(&lab, None);
    });
}
