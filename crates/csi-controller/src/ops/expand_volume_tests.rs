use super::*;
use crate::{
    lvm::{argv, tags::VolumeRecord},
    ops::{
        capability::mount,
        testing::{FakeHost, VG, lv_row, pool_row},
    },
};
use csi_common::{Kind, command::Expectation, ids::LvName, testing::refused};
use csi_proto::v1::volume_capability::access_mode::Mode;
use std::time::Duration;

const MIB: u64 = 1 << 20;
const T: Duration = Duration::from_secs(5);

fn range(required: u64, limit: u64) -> CapacityRange {
    CapacityRange {
        required_bytes: required.cast_signed(),
        limit_bytes: limit.cast_signed(),
    }
}

fn tags(required: u64) -> Vec<String> {
    VolumeRecord {
        name: "v".into(),
        required_bytes: required,
        capabilities: "mount/ext4/SINGLE_NODE_WRITER".into(),
        ..Default::default()
    }
    .creation_tags()
}

use csi_common::testing::argv;

/// ControllerExpandVolume of `id` to `required`..`limit` bytes, with no capability.
async fn expand_to(host: &FakeHost, id: &str, required: u64, limit: u64) -> Result<Expanded> {
    expand_volume(&host.ctx, id, Some(&range(required, limit)), None).await
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../tests/fixtures/controller/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn expect_extend(host: &FakeHost, lv: &str, size: u64) {
    let lv = LvName::parse(lv).unwrap();
    host.expect(
        Expectation::new(argv(&argv::lvextend(VG, &lv, size, T)))
            .stdout(fixture("lvextend-thin.stdout")),
    );
}

fn expect_retag(host: &FakeHost, lv: &str, from: u64, to: u64) {
    let lv = LvName::parse(lv).unwrap();
    host.expect(Expectation::new(argv(&argv::lvchange_retag(
        VG,
        &lv,
        &[required_tag(from)],
        &[required_tag(to)],
        T,
    ))));
}

#[tokio::test]
async fn grows_a_thin_volume_to_whole_extents_and_records_the_request() {
    let host = FakeHost::new();
    let row = lv_row("csi-v-1", 64 * MIB, Some("pool"), &tags(64 * MIB));
    host.expect_lookup(&row);
    host.expect_survey(10 << 30, 4 * MIB, &[pool_row(8 << 30), row]);
    expect_extend(&host, "csi-v-1", 132 * MIB);
    expect_retag(&host, "csi-v-1", 64 * MIB, 130 * MIB);
    let cap = mount("ext4", Mode::SingleNodeWriter);
    let out = expand_volume(&host.ctx, "csi-v-1", Some(&range(130 * MIB, 0)), Some(&cap))
        .await
        .unwrap();
    assert_eq!(
        out,
        Expanded {
            capacity: 132 * MIB,
            node_expansion_required: true
        }
    );
    host.finish();
}

#[tokio::test]
async fn already_large_enough_answers_the_current_size_and_block_needs_the_node_too() {
    let host = FakeHost::new();
    let block_tags = VolumeRecord {
        name: "v".into(),
        required_bytes: 130 * MIB,
        capabilities: "block/SINGLE_NODE_WRITER".into(),
        ..Default::default()
    }
    .creation_tags();
    let row = lv_row("csi-v-1", 132 * MIB, None, &block_tags);
    host.expect_lookup(&row);
    let block = csi_proto::v1::VolumeCapability {
        access_type: Some(csi_proto::v1::volume_capability::AccessType::Block(
            Default::default(),
        )),
        access_mode: Some(csi_proto::v1::volume_capability::AccessMode {
            mode: Mode::SingleNodeWriter as i32,
        }),
    };
    let out = expand_volume(
        &host.ctx,
        "csi-v-1",
        Some(&range(100 * MIB, 0)),
        Some(&block),
    )
    .await
    .unwrap();
    assert_eq!(out.capacity, 132 * MIB);
    assert!(
        out.node_expansion_required,
        "the node rescans block volumes too"
    );
    // An interrupted call (LV grown, tag not yet) is completed by the retry.
    host.expect_lvs_one("csi-v-1", &[row]);
    expect_retag(&host, "csi-v-1", 130 * MIB, 131 * MIB);
    let out = expand_to(&host, "csi-v-1", 131 * MIB, 0).await.unwrap();
    assert_eq!(out.capacity, 132 * MIB);
    host.finish();
}

#[tokio::test]
async fn shrinking_limits_and_bad_requests() {
    let host = FakeHost::new();
    let row = lv_row("csi-v-1", 132 * MIB, None, &tags(130 * MIB));
    // Shrinking: the range wants less than the volume has.
    host.expect_lookup(&row);
    refused(
        expand_to(&host, "csi-v-1", 64 * MIB, 64 * MIB).await,
        Kind::OutOfRange,
    );
    // The rounded size would pass limit_bytes.
    host.expect_lookup(&row);
    host.expect_survey(10 << 30, 4 * MIB, std::slice::from_ref(&row));
    refused(
        expand_to(&host, "csi-v-1", 133 * MIB, 134 * MIB).await,
        Kind::OutOfRange,
    );
    // Requests refused before LVM.
    for (id, r, kind) in [
        ("", Some(range(MIB, 0)), Kind::InvalidArgument),
        ("csi-v-1", None, Kind::InvalidArgument),
        ("csi-v-1", Some(range(2 * MIB, MIB)), Kind::OutOfRange),
        ("no-such", Some(range(MIB, 0)), Kind::NotFound),
    ] {
        let err = expand_volume(&host.ctx, id, r.as_ref(), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{id} {r:?}");
    }
    let negative = CapacityRange {
        required_bytes: -1,
        limit_bytes: 0,
    };
    refused(
        expand_volume(&host.ctx, "csi-v-1", Some(&negative), None).await,
        Kind::InvalidArgument,
    );
    refused(
        expand_volume(
            &host.ctx,
            "csi-v-1",
            Some(&range(MIB, 0)),
            Some(&mount("btrfs", Mode::SingleNodeWriter)),
        )
        .await,
        Kind::InvalidArgument,
    );
    // A volume that does not exist.
    host.expect_lvs_one("csi-gone-1", &[]);
    refused(expand_to(&host, "csi-gone-1", MIB, 0).await, Kind::NotFound);
    host.finish();
}

#[tokio::test]
async fn no_room_is_resource_exhausted() {
    let host = FakeHost::new();
    // Linear: the VG's free space.
    let linear = lv_row("csi-v-1", 64 * MIB, None, &tags(64 * MIB));
    host.expect_lookup(&linear);
    host.expect_survey(32 * MIB, 4 * MIB, std::slice::from_ref(&linear));
    let err = refused(
        expand_to(&host, "csi-v-1", 128 * MIB, 0).await,
        Kind::ResourceExhausted,
    );
    assert!(
        err.message()
            .contains("67108864 bytes wanted, 33554432 bytes free"),
        "{err}"
    );
    // Thin: the pool's remaining promise.
    let thin = lv_row("csi-t-1", 64 * MIB, Some("pool"), &tags(64 * MIB));
    host.expect_lookup(&thin);
    host.expect_survey(10 << 30, 4 * MIB, &[pool_row(1 << 30), thin]);
    let err = refused(
        expand_to(&host, "csi-t-1", 2 << 30, 0).await,
        Kind::ResourceExhausted,
    );
    assert!(
        err.message()
            .contains("67108864 already are, 1006632960 left"),
        "{err}"
    );
    // LVM's own refusal (captured) maps the same way.
    host.expect_lookup(&linear);
    host.expect_survey(10 << 30, 4 * MIB, &[linear]);
    let lv = LvName::parse("csi-v-1").unwrap();
    host.expect(
        Expectation::new(argv(&argv::lvextend(VG, &lv, 128 * MIB, T)))
            .fails(5, fixture("lvextend-nospace.stderr")),
    );
    refused(
        expand_to(&host, "csi-v-1", 128 * MIB, 0).await,
        Kind::ResourceExhausted,
    );
    host.finish();
}

#[tokio::test]
async fn a_capability_the_volume_was_not_created_for_is_invalid_and_grows_nothing() {
    let host = FakeHost::new();
    let row = lv_row("csi-v-1", 132 * MIB, None, &tags(130 * MIB));
    let block = csi_proto::v1::VolumeCapability {
        access_type: Some(csi_proto::v1::volume_capability::AccessType::Block(
            Default::default(),
        )),
        access_mode: Some(csi_proto::v1::volume_capability::AccessMode {
            mode: Mode::SingleNodeWriter as i32,
        }),
    };
    let xfs = crate::ops::capability::mount("xfs", Mode::SingleNodeWriter);
    for cap in [block, xfs] {
        // Only the lookup: no survey, no lvextend, no retag.
        host.expect_lookup(&row);
        let out = expand_volume(&host.ctx, "csi-v-1", Some(&range(256 * MIB, 0)), Some(&cap)).await;
        let why = refused(out, Kind::InvalidArgument);
        assert!(why.message().contains("mount/ext4"), "{why}");
    }
    host.finish();
}
