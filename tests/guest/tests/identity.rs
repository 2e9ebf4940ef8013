//! Guest tier: both plugins report ready on a host that has everything, and the controller
//! reports not ready (without failing) when its volume group is missing.

use carve_guest_tests::{
    Driver, DriverOptions, Lab, guest_test,
    identity::{plugin_info, ready},
};

guest_test!(both_plugins_are_ready_in_the_lab, async {
    let lab = Lab::from_env();
    let driver = Driver::start(&lab, DriverOptions::default()).await;
    for client in [&driver.controller, &driver.node] {
        let info = plugin_info(client).await;
        assert_eq!(info.name, "lvm-iscsi.csi.carve.dev");
        assert_eq!(info.vendor_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(ready(client).await, Some(true));
    }
});

guest_test!(controller_without_its_volume_group_is_not_ready, async {
    let lab = Lab::from_env();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("c.sock");
    let mut child = std::process::Command::new("csi-controller")
        .arg("--endpoint")
        .arg(format!("unix://{}", socket.display()))
        .args(["--volume-group", "no-such-vg", "--portal", &lab.portal])
        .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
        .spawn()
        .unwrap();
    let client = carvectl::Client::connect_with_retry(
        &carvectl::Endpoint::Unix(socket),
        std::time::Duration::from_mins(1),
    )
    .await
    .unwrap();
    assert_eq!(ready(&client).await, Some(false));
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert!(log.contains("no-such-vg"), "the reason is logged: {log}");
});
