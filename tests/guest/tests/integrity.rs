//! Guest tier, controller integrity (issue #15): space promised never exceeds the thin pool's
//! overprovision ratio, even under parallel CreateVolume calls. Each scenario makes its own
//! small pool in the lab's VG and removes it at the end, then accounts for leaks.

use carve_guest_tests::{Driver, DriverOptions, Lab, assert_no_leaks, run, run_ok};
use carvectl::request::{block_capability, capacity_range};
use csi_proto::v1::{
    CreateVolumeRequest, DeleteVolumeRequest, volume_capability::access_mode::Mode,
};
use std::collections::HashMap;

const MIB: i64 = 1024 * 1024;

/// A thin pool of `size` in the lab's VG, removed on drop (after the driver is gone).
struct Pool {
    vg: String,
    name: String,
}

impl Pool {
    fn create(lab: &Lab, name: &str, size: &str, zero: bool) -> Self {
        let _ = run("lvremove", &["--yes", &format!("{}/{name}", lab.vg)]);
        run_ok(
            "lvcreate",
            &[
                "--yes",
                "--type",
                "thin-pool",
                "--size",
                size,
                "--zero",
                if zero { "y" } else { "n" },
                "--name",
                name,
                &lab.vg,
            ],
        );
        Self {
            vg: lab.vg.clone(),
            name: name.to_string(),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = run(
            "lvremove",
            &["--yes", &format!("{}/{}", self.vg, self.name)],
        );
    }
}

fn with_pool(lab: &Lab, pool: &Pool) -> Lab {
    let mut lab = lab.clone();
    lab.pool = pool.name.clone();
    lab
}

fn thin_request(name: &str, size: i64) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.into(),
        capacity_range: capacity_range(size, 0),
        volume_capabilities: vec![block_capability(Mode::SingleNodeWriter)],
        parameters: HashMap::from([("thin".into(), "true".into())]),
        ..Default::default()
    }
}

/// Virtual bytes promised in `pool`, as LVM reports them.
fn promised(lab: &Lab, pool: &str) -> u64 {
    let out = run_ok(
        "lvs",
        &[
            "--noheadings",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            "pool_lv,lv_size",
            &lab.vg,
        ],
    );
    out.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (p, size) = (fields.next()?, fields.next()?);
            (p == pool).then(|| size.parse::<u64>().ok()).flatten()
        })
        .sum()
}

#[tokio::test]
#[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
async fn parallel_creates_never_exceed_the_overprovision_ratio() {
    let base = Lab::from_env();
    let pool = Pool::create(&base, "i15ratio", "1g", true);
    let lab = with_pool(&base, &pool);
    let driver = Driver::start(
        &lab,
        DriverOptions {
            controller_args: vec!["--thin-overprovision-ratio".into(), "1".into()],
            ..Default::default()
        },
    )
    .await;
    let calls = (0..8).map(|i| {
        let mut client = driver.controller.controller.clone();
        tokio::spawn(async move {
            client
                .create_volume(thin_request(&format!("ratio-{i}"), 512 * MIB))
                .await
                .map(|r| r.into_inner().volume.expect("volume").volume_id)
        })
    });
    let mut created = Vec::new();
    let mut refused = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        match call.await.expect("task") {
            Ok(id) => created.push(id),
            Err(status) => refused.push(status),
        }
    }
    assert_eq!(created.len(), 2, "refusals: {refused:?}\n{}", driver.logs());
    for status in &refused {
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        assert!(
            status.message().contains("1073741824 bytes x ratio 1"),
            "the refusal names the figures: {status:?}"
        );
    }
    assert_eq!(promised(&lab, &pool.name), 1 << 30);
    for id in created {
        driver
            .controller
            .controller
            .clone()
            .delete_volume(DeleteVolumeRequest {
                volume_id: id,
                ..Default::default()
            })
            .await
            .expect("DeleteVolume");
    }
    drop(driver);
    drop(pool);
    assert_no_leaks(&lab, None);
}
