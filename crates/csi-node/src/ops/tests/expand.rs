//! NodeExpandVolume against the fakes: rescan then grow for ext4 and XFS, rescan only for
//! block, idempotency, and every error case.

use super::rpc::{self, expand};
use super::{Harness, SERIAL, VOL, ext4, harness};
use crate::filesystem::Probe;
use csi_common::{Kind, command::Expectation};
use csi_proto::v1::{CapacityRange, NodeExpandVolumeRequest, volume_capability::access_mode::Mode};

use super::{block_cap, mount_cap};

const MIB: u64 = 1 << 20;

impl Harness {
    fn expand_req(&self, volume_path: &str, required: u64) -> NodeExpandVolumeRequest {
        NodeExpandVolumeRequest {
            volume_id: VOL.into(),
            volume_path: self.p(volume_path),
            staging_target_path: self.p("stage"),
            capacity_range: (required > 0).then_some(CapacityRange {
                required_bytes: required.cast_signed(),
                limit_bytes: 0,
            }),
            ..Default::default()
        }
    }

    fn rescans(&self) -> usize {
        let calls = self.devs.calls.lock().unwrap();
        calls.iter().filter(|c| *c == "rescan sdb").count()
    }
}

#[tokio::test]
async fn ext4_is_rescanned_then_grown_online_through_the_device_and_idempotent() {
    let h = harness(Ok(Probe::Empty));
    h.expect_mkfs_ext4("/dev/sdb");
    h.stage_and_publish(&ext4(), "pods/a").await;
    *h.devs.size_after_rescan.lock().unwrap() = Some(128 * MIB);
    h.runner
        .expect(Expectation::new(["resize2fs", "/dev/sdb"]))
        .expect(
            Expectation::new(["resize2fs", "/dev/sdb"])
                .stdout("The filesystem is already 131072 (1k) blocks long.  Nothing to do!\n"),
        )
        .expect(Expectation::new(["resize2fs", "/dev/sdb"]));
    let grown = expand(&h.core, h.expand_req("pods/a", 128 * MIB))
        .await
        .unwrap();
    assert_eq!(grown.capacity_bytes, (128 * MIB).cast_signed());
    let again = expand(&h.core, h.expand_req("pods/a", 128 * MIB))
        .await
        .expect("idempotent");
    assert_eq!(again.capacity_bytes, (128 * MIB).cast_signed());
    let mut at_staging = h.expand_req("stage", 0);
    at_staging.staging_target_path.clear(); // optional for the CO
    expand(&h.core, at_staging)
        .await
        .expect("the staging path is a volume path too");
    h.runner.finish();
    assert_eq!(h.rescans(), 3);
}

#[tokio::test]
async fn xfs_is_grown_on_the_staging_mount_which_is_nouuid() {
    let h = harness(Ok(Probe::Filesystem("xfs".into())));
    let xfs = mount_cap("xfs", Mode::SingleNodeWriter);
    h.runner
        .expect(Expectation::new(["xfs_growfs", "-d", &h.p("stage")]));
    rpc::stage(&h.core, h.stage_req(xfs.clone())).await.unwrap();
    assert_eq!(
        h.mount_calls(),
        ["mount_fs /dev/sdb /stage xfs nouuid"],
        "a clone mounts beside its source"
    );
    *h.devs.size_after_rescan.lock().unwrap() = Some(512 * MIB);
    h.runner
        .expect(Expectation::new(["xfs_growfs", "-d", &h.p("stage")]));
    let mut req = h.expand_req("stage", 0);
    req.volume_capability = Some(xfs);
    assert_eq!(
        expand(&h.core, req).await.unwrap().capacity_bytes,
        (512 * MIB).cast_signed()
    );
    h.runner.finish();
}

#[tokio::test]
async fn block_volume_is_rescanned_only() {
    let h = harness(Err("the probe must not run".into()));
    let cap = block_cap(Mode::SingleNodeWriter);
    h.stage_and_publish(&cap, "pods/dev").await;
    *h.devs.size_after_rescan.lock().unwrap() = Some(96 * MIB);
    let mut req = h.expand_req("pods/dev", 96 * MIB);
    req.volume_capability = Some(cap);
    assert_eq!(
        expand(&h.core, req).await.unwrap().capacity_bytes,
        (96 * MIB).cast_signed()
    );
    h.runner.finish(); // no resize tool ran
    assert_eq!(h.rescans(), 1);
}

#[tokio::test]
async fn expand_errors() {
    let h = harness(Ok(Probe::Filesystem("ext4".into())));
    let kind = |req: NodeExpandVolumeRequest| {
        let core = &h.core;
        async move { expand(core, req).await.unwrap_err().kind() }
    };
    assert_eq!(
        kind(h.expand_req("stage", 0)).await,
        Kind::NotFound,
        "not staged"
    );
    h.expect_existing_ext4();
    rpc::stage(&h.core, h.stage_req(ext4())).await.unwrap();
    h.runner.finish();

    let mut r = h.expand_req("stage", 0);
    r.volume_id.clear();
    assert_eq!(kind(r).await, Kind::InvalidArgument);
    let mut r = h.expand_req("stage", 0);
    r.volume_path.clear();
    assert_eq!(kind(r).await, Kind::InvalidArgument);
    let mut r = h.expand_req("stage", 0);
    r.volume_path = "relative/path".into();
    assert_eq!(
        kind(r).await,
        Kind::NotFound,
        "a relative path holds no volume"
    );
    let mut r = h.expand_req("stage", 0);
    r.staging_target_path = h.p("pods/../stage");
    assert_eq!(kind(r).await, Kind::NotFound, "not the staging path");
    assert_eq!(kind(h.expand_req("nowhere", 0)).await, Kind::NotFound);
    assert_eq!(
        kind(h.expand_req("pods", 0)).await,
        Kind::NotFound,
        "a path that is not this volume's"
    );
    let mut r = h.expand_req("stage", 0);
    r.staging_target_path = h.p("pods");
    assert_eq!(kind(r).await, Kind::NotFound, "staged elsewhere");
    let mut r = h.expand_req("stage", 0);
    r.volume_capability = Some(block_cap(Mode::SingleNodeWriter));
    assert_eq!(kind(r).await, Kind::InvalidArgument, "staged as a mount");
    let mut r = h.expand_req("stage", 0);
    r.capacity_range = Some(CapacityRange {
        required_bytes: -1,
        limit_bytes: 0,
    });
    assert_eq!(kind(r).await, Kind::InvalidArgument);
    // required_bytes above limit_bytes, a size not reached in time, a disk of another serial:
    // `error_codes_leave_kubelet_retrying_only_what_may_pass`.
    let mut r = h.expand_req("stage", 0);
    r.capacity_range = Some(CapacityRange {
        required_bytes: 0,
        limit_bytes: 32 * MIB.cast_signed(),
    });
    assert_eq!(kind(r).await, Kind::OutOfRange, "disk above the limit");

    h.init.sessions.lock().unwrap().clear();
    assert_eq!(
        kind(h.expand_req("stage", 0)).await,
        Kind::Unavailable,
        "session down"
    );
    h.runner.finish(); // resize2fs never ran
}

/// kubelet gives up on INVALID_ARGUMENT, OUT_OF_RANGE and NOT_FOUND (infeasible: the PVC is
/// marked until its size changes) and never retries FAILED_PRECONDITION on the node (volume in
/// use, no online expansion); it retries the rest. So: a range no volume satisfies is
/// OUT_OF_RANGE as ControllerExpandVolume answers it, a size the rescans have not shown yet is
/// UNAVAILABLE, a staging mount gone or holding another device is NOT_FOUND, and a disk of
/// another serial is INTERNAL; nothing is grown in any of them.
#[tokio::test]
async fn error_codes_leave_kubelet_retrying_only_what_may_pass() {
    let h = harness(Ok(Probe::Filesystem("ext4".into())));
    let kind = |req: NodeExpandVolumeRequest| {
        let core = &h.core;
        async move { expand(core, req).await.unwrap_err().kind() }
    };
    h.expect_existing_ext4();
    rpc::stage(&h.core, h.stage_req(ext4())).await.unwrap();
    h.runner.finish();

    let mut r = h.expand_req("stage", 0);
    r.capacity_range = Some(CapacityRange {
        required_bytes: 2 * MIB.cast_signed(),
        limit_bytes: MIB.cast_signed(),
    });
    assert_eq!(kind(r).await, Kind::OutOfRange, "required above limit");

    // The disk does not show the size within the device timeout (bounded wait, rescanning):
    // retryable, and the retry after the target serves the new size grows.
    let before = h.rescans();
    let err = expand(&h.core, h.expand_req("stage", 128 * MIB))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::Unavailable, "{err}");
    assert!(h.rescans() > before + 1, "rescanned while waiting");
    *h.devs.size_after_rescan.lock().unwrap() = Some(128 * MIB);
    h.runner.expect(Expectation::new(["resize2fs", "/dev/sdb"]));
    let grown = expand(&h.core, h.expand_req("stage", 128 * MIB))
        .await
        .expect("the retry grows");
    assert_eq!(grown.capacity_bytes, (128 * MIB).cast_signed());
    h.runner.finish();

    let staging = h.root.join("stage");
    let set_source = |source: &str| {
        for m in h.mounts.table.lock().unwrap().iter_mut() {
            if m.mount_point == staging {
                m.source = source.into();
            }
        }
    };
    set_source("/dev/sdc");
    assert_eq!(
        kind(h.expand_req("stage", 0)).await,
        Kind::NotFound,
        "the staging mount holds another device"
    );
    set_source("/dev/sdb");
    let saved = h.mounts.table.lock().unwrap().clone();
    h.mounts
        .table
        .lock()
        .unwrap()
        .retain(|m| m.mount_point != staging);
    assert_eq!(
        kind(h.expand_req("stage", 0)).await,
        Kind::NotFound,
        "the staging mount is gone"
    );
    *h.mounts.table.lock().unwrap() = saved;

    *h.devs.serial.lock().unwrap() = "5a0c1e00-0000-4000-8000-000000000bad".into();
    let err = expand(&h.core, h.expand_req("stage", 0)).await.unwrap_err();
    assert_eq!(
        err.kind(),
        Kind::Internal,
        "another disk behind the session"
    );
    assert!(err.message().contains("refusing to use this disk"), "{err}");
    *h.devs.serial.lock().unwrap() = SERIAL.into();
    h.runner.finish(); // resize2fs ran only for the retry that grew
}
