use super::*;
use crate::{
    lvm::{LvRow, argv, tags::VolumeRecord},
    ops::{
        capability::mount,
        snapshot::testing::snap_row,
        testing::{FakeHost, VG, carve_tags, create_request, lv_row, pool_row, range},
    },
};
use csi_common::{Kind, command::Expectation, testing::refused};
use csi_proto::v1::{
    CapacityRange, VolumeCapability,
    volume_capability::{AccessMode, AccessType, access_mode::Mode},
    volume_content_source::{SnapshotSource, VolumeSource},
};
use std::{collections::HashMap, time::Duration};

const MIB: u64 = 1 << 20;
const T: Duration = Duration::from_secs(5);

fn thin() -> HashMap<String, String> {
    HashMap::from([("thin".to_string(), "true".to_string())])
}

fn from_snapshot(id: &str) -> VolumeContentSource {
    VolumeContentSource {
        r#type: Some(SourceType::Snapshot(SnapshotSource {
            snapshot_id: id.into(),
        })),
    }
}

fn from_volume(id: &str) -> VolumeContentSource {
    VolumeContentSource {
        r#type: Some(SourceType::Volume(VolumeSource {
            volume_id: id.into(),
        })),
    }
}

/// CreateVolume of `name` (ext4, single-node writer) from `source`.
async fn create(
    host: &FakeHost,
    name: &str,
    range: Option<&CapacityRange>,
    params: &HashMap<String, String>,
    source: &VolumeContentSource,
) -> Result<Created> {
    let caps = [mount("ext4", Mode::SingleNodeWriter)];
    create_from_source(
        &host.ctx,
        create_request(name, &caps, range, params),
        source,
    )
    .await
}

/// The lookups before any claim: the VG, the new LV (absent) and the source named `source`.
fn expect_new_from(host: &FakeHost, lv: &LvName, source: &str, rows: &[LvRow]) {
    host.expect_vgs(10 << 30, 4 * MIB);
    host.expect_lvs_one(lv.as_str(), &[]);
    host.expect_lvs_one(source, rows);
}

/// The growth of `small` (the LV `lv`) to 100 MiB: a claim admitted on a fresh report.
fn expect_growth(host: &FakeHost, lv: &LvName, small: LvRow) {
    host.expect_survey(10 << 30, 4 * MIB, &[pool_row(8 << 30), small]);
    host.expect(Expectation::of(&argv::lvextend(VG, lv, 100 * MIB, T)));
}

fn record(name: &str, required: u64, source: &str) -> VolumeRecord {
    VolumeRecord {
        name: name.into(),
        required_bytes: required,
        capabilities: "mount/ext4/SINGLE_NODE_WRITER".into(),
        content_source: source.into(),
        published: Vec::new(),
        used: false,
        claim: Default::default(),
    }
}

fn expect_restore_lvcreate(host: &FakeHost, origin: &str, lv: &LvName, record: &VolumeRecord) {
    let origin = LvName::parse(origin).unwrap();
    host.expect(Expectation::of(&argv::lvcreate_thin_snapshot(
        VG,
        &origin,
        lv,
        SnapshotUse::Volume,
        &record.creation_tags(),
        T,
    )));
}

#[tokio::test]
async fn restores_a_snapshot_grown_to_the_request_and_exports_it() {
    let host = FakeHost::new();
    let params = thin();
    let lv = LvName::for_volume("r");
    let snap = snap_row("snap-s-1", 64 * MIB, "s", "csi-v-1");
    expect_new_from(&host, &lv, "snap-s-1", std::slice::from_ref(&snap));
    host.expect_survey(10 << 30, 4 * MIB, &[pool_row(8 << 30), snap]);
    let rec = record("r", 100 * MIB, "snapshot:snap-s-1");
    expect_restore_lvcreate(&host, "snap-s-1", &lv, &rec);
    // The growth is a second claim, admitted against a report read after the snapshot.
    let small = lv_row(lv.as_str(), 64 * MIB, Some("pool"), &rec.creation_tags());
    expect_growth(&host, &lv, small);
    let mut row = lv_row(lv.as_str(), 100 * MIB, Some("pool"), &rec.creation_tags());
    row.origin = Some("snap-s-1".into());
    host.expect_lvs_one(lv.as_str(), &[row]);
    let r = range(100 * MIB, 0);
    let created = create(&host, "r", Some(&r), &params, &from_snapshot("snap-s-1"))
        .await
        .unwrap();
    let Created::Created(volume) = created else {
        panic!("{created:?}")
    };
    assert_eq!(volume.lv.size, 100 * MIB);
    let context = volume.volume_context(&host.ctx);
    assert_eq!(context["contentSource"], "snapshot:snap-s-1");
    let state = crate::lio::state::read_state(host.lio.layout()).unwrap();
    crate::lio::verify_export(&state, &volume.export_spec(&host.ctx, VG)).unwrap();
    host.finish();
}

#[tokio::test]
async fn clones_a_thin_volume_at_its_size_without_a_range() {
    let host = FakeHost::new();
    // As the provisioner sends it with --extra-create-metadata: the clone records its claim.
    let mut params = thin();
    params.insert("csi.storage.k8s.io/pvc/namespace".into(), "ns".into());
    params.insert("csi.storage.k8s.io/pvc/name".into(), "copy".into());
    let lv = LvName::for_volume("c");
    let source = lv_row("csi-v-1", 64 * MIB, Some("pool"), &carve_tags("v"));
    expect_new_from(&host, &lv, "csi-v-1", std::slice::from_ref(&source));
    host.expect_survey(10 << 30, 4 * MIB, &[pool_row(8 << 30), source]);
    let mut rec = record("c", 0, "volume:csi-v-1");
    rec.claim.pvc_namespace = "ns".into();
    rec.claim.pvc_name = "copy".into();
    expect_restore_lvcreate(&host, "csi-v-1", &lv, &rec);
    let row = lv_row(lv.as_str(), 64 * MIB, Some("pool"), &rec.creation_tags());
    host.expect_lvs_one(lv.as_str(), std::slice::from_ref(&row));
    let created = create(&host, "c", None, &params, &from_volume("csi-v-1"))
        .await
        .unwrap();
    assert_eq!(created.volume().lv.size, 64 * MIB);
    assert!(matches!(created, Created::Created(_)));
    let context = created.volume().volume_context(&host.ctx);
    assert_eq!(
        (&context["pvcNamespace"][..], &context["pvcName"][..]),
        ("ns", "copy")
    );

    // Same name and source: the same volume. Another source, or empty: ALREADY_EXISTS.
    for (source, existed) in [
        (from_volume("csi-v-1"), true),
        (from_snapshot("snap-s-1"), false),
    ] {
        host.expect_vgs(10 << 30, 4 * MIB);
        host.expect_lvs_one(lv.as_str(), std::slice::from_ref(&row));
        let again = create(&host, "c", None, &params, &source).await;
        if existed {
            assert!(matches!(again.unwrap(), Created::AlreadyExisted(_)));
        } else {
            refused(again, Kind::AlreadyExists);
        }
    }
    host.finish();
}

/// Volume "r", made from snapshot "snap-s-1" for 100 MiB and left at the snapshot's 64 MiB by
/// an interrupted call: its LV name and row.
fn interrupted_restore() -> (LvName, LvRow) {
    let lv = LvName::for_volume("r");
    let rec = record("r", 100 * MIB, "snapshot:snap-s-1");
    let small = lv_row(lv.as_str(), 64 * MIB, Some("pool"), &rec.creation_tags());
    (lv, small)
}

#[tokio::test]
async fn another_size_or_capability_for_an_existing_restore_is_already_exists_and_grows_nothing() {
    let host = FakeHost::new();
    let params = thin();
    let (lv, small) = interrupted_restore();
    // Asked for 200 MiB: another request, not the interrupted one (spec.md, CreateVolume
    // errors: incompatible with the specified `capacity_range`).
    host.expect_vgs(10 << 30, 4 * MIB);
    host.expect_lvs_one(lv.as_str(), std::slice::from_ref(&small));
    let bigger = range(200 * MIB, 0);
    let why = refused(
        create(
            &host,
            "r",
            Some(&bigger),
            &params,
            &from_snapshot("snap-s-1"),
        )
        .await,
        Kind::AlreadyExists,
    );
    assert!(why.message().contains("104857600"), "{why}");
    // Asked as raw block: made for ext4.
    host.expect_vgs(10 << 30, 4 * MIB);
    host.expect_lvs_one(lv.as_str(), std::slice::from_ref(&small));
    let block = [VolumeCapability {
        access_type: Some(AccessType::Block(Default::default())),
        access_mode: Some(AccessMode {
            mode: Mode::SingleNodeWriter as i32,
        }),
    }];
    let r = range(100 * MIB, 0);
    let as_block = create_from_source(
        &host.ctx,
        create_request("r", &block, Some(&r), &params),
        &from_snapshot("snap-s-1"),
    )
    .await;
    refused(as_block, Kind::AlreadyExists);
    host.finish();
}

#[tokio::test]
async fn an_interrupted_restore_is_grown_by_the_retry() {
    let host = FakeHost::new();
    let params = thin();
    let (lv, small) = interrupted_restore();
    let rec = record("r", 100 * MIB, "snapshot:snap-s-1");
    host.expect_vgs(10 << 30, 4 * MIB);
    host.expect_lvs_one(lv.as_str(), std::slice::from_ref(&small));
    // The growth is admitted in the queue like any other claim.
    expect_growth(&host, &lv, small);
    let grown = lv_row(lv.as_str(), 100 * MIB, Some("pool"), &rec.creation_tags());
    host.expect_lvs_one(lv.as_str(), &[grown]);
    let r = range(100 * MIB, 0);
    let again = create(&host, "r", Some(&r), &params, &from_snapshot("snap-s-1"))
        .await
        .unwrap();
    assert_eq!(again.volume().lv.size, 100 * MIB);
    host.finish();
}

#[tokio::test]
async fn sources_that_are_missing_linear_or_too_big_for_the_range() {
    let host = FakeHost::new();
    let params = thin();
    let lv = LvName::for_volume("r");
    // Unknown snapshot ids (never issued, and well-formed but gone): NOT_FOUND.
    for (source, lookup) in [
        (from_snapshot("vol-1"), None),
        (from_snapshot("snap-gone-1"), Some("snap-gone-1")),
        (from_volume("snap-s-1"), None),
        (from_volume("csi-gone-1"), Some("csi-gone-1")),
    ] {
        host.expect_vgs(10 << 30, 4 * MIB);
        host.expect_lvs_one(lv.as_str(), &[]);
        if let Some(name) = lookup {
            host.expect_lvs_one(name, &[]);
        }
        let err = create(&host, "r", None, &params, &source)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), Kind::NotFound, "{source:?}");
    }
    // A linear source volume: INVALID_ARGUMENT.
    let linear = lv_row("csi-lin-1", 64 * MIB, None, &carve_tags("lin"));
    expect_new_from(&host, &lv, "csi-lin-1", &[linear]);
    let linear = create(&host, "r", None, &params, &from_volume("csi-lin-1")).await;
    refused(linear, Kind::InvalidArgument);
    // limit_bytes below the source's size: OUT_OF_RANGE.
    let snap = snap_row("snap-s-1", 64 * MIB, "s", "csi-v-1");
    expect_new_from(&host, &lv, "snap-s-1", std::slice::from_ref(&snap));
    let r = range(16 * MIB, 32 * MIB);
    let too_big = create(&host, "r", Some(&r), &params, &from_snapshot("snap-s-1")).await;
    refused(too_big, Kind::OutOfRange);
    // A snapshot whose pool failed is not ready: UNAVAILABLE (retried).
    let mut failed = snap.clone();
    failed.attr = "Vwi---tzFk".into();
    expect_new_from(&host, &lv, "snap-s-1", &[failed]);
    let not_ready = create(&host, "r", None, &params, &from_snapshot("snap-s-1")).await;
    refused(not_ready, Kind::Unavailable);
    // No room left in the pool's promise: RESOURCE_EXHAUSTED.
    expect_new_from(&host, &lv, "snap-s-1", std::slice::from_ref(&snap));
    let v = lv_row("csi-v-1", 64 * MIB, Some("pool"), &carve_tags("v"));
    host.expect_survey(10 << 30, 4 * MIB, &[pool_row(128 * MIB), snap, v]);
    let no_room = create(&host, "r", None, &params, &from_snapshot("snap-s-1")).await;
    refused(no_room, Kind::ResourceExhausted);
    host.finish();
}

#[tokio::test]
async fn requests_refused_before_lvm() {
    let host = FakeHost::new();
    let linear = HashMap::new();
    let params = thin();
    let snapshot = from_snapshot("snap-s-1");
    let err = refused(
        create(&host, "r", None, &linear, &snapshot).await,
        Kind::InvalidArgument,
    );
    assert!(err.message().contains("thin=true"), "{err}");
    for source in [
        VolumeContentSource { r#type: None },
        from_snapshot(""),
        from_volume(""),
    ] {
        let err = create(&host, "r", None, &params, &source)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), Kind::InvalidArgument, "{source:?}");
    }
    refused(
        create(&host, "", None, &params, &snapshot).await,
        Kind::InvalidArgument,
    );
    host.finish();
}
