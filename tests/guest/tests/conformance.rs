//! Guest tier of Carve's conformance suite (`carve_guest_tests::conformance`): the stateless
//! cases against the real binaries, then one volume's whole life in mount mode (with snapshot,
//! restore, clone and the attach limit) and in block mode, on real LVM, LIO and open-iscsi,
//! ending with leak accounting. One driver for every case keeps the added guest time small.

use carve_guest_tests::{
    Driver, DriverOptions, Lab, assert_no_leaks,
    conformance::{Table, lifecycle, lifecycle::Run, stateless, stateless::Env},
    guest_test,
};
use carvectl::request::{block_capability, mount_capability};
use csi_proto::v1::volume_capability::access_mode::Mode;

guest_test!(conformance, async {
    let lab = Lab::from_env();
    let options = DriverOptions::default()
        .controller(["--max-volumes-per-node=2"])
        .node(["--max-volumes=2"]);
    let driver = Driver::start(&lab, options).await;
    let mut t = Table::default();
    let staging = driver.staging_path("stateless");
    let target = driver.target_path("stateless");
    let env = Env {
        node_id: &lab.initiator,
        max_volumes: 2,
        staging: &staging,
        target: &target,
        probe: true,
    };
    stateless(&mut t, &driver.controller, &driver.node, &env).await;
    let runs = [
        Run {
            mode: "mount",
            capability: mount_capability(Mode::SingleNodeWriter, "ext4", &[], ""),
            sources: true,
        },
        Run {
            mode: "block",
            capability: block_capability(Mode::SingleNodeWriter),
            sources: false,
        },
    ];
    for run in &runs {
        lifecycle(&mut t, &driver, run).await;
    }
    if !t.passed() {
        eprintln!("{}", driver.logs());
    }
    t.finish("guest");
    assert_no_leaks(&lab, Some(driver.dir.path()));
});
