use super::*;
use crate::{
    lvm::argv::lvcreate_thin_snapshot,
    ops::{
        snapshot::testing::snap_row,
        testing::{FakeHost, VG, carve_tags, lv_row, pool_row},
    },
};
use csi_common::{Kind, command::Expectation, testing::refused};
use std::time::Duration;

const MIB: u64 = 1 << 20;
const CLOCK: (i64, u32) = (1_732_190_000, 42);

async fn create(ctx: &Ctx, r: CreateSnapshot<'_>) -> Result<SnapshotCreated> {
    create_snapshot_at(ctx, r, || CLOCK).await
}

/// CreateSnapshot of "s" from `source`, with no parameters.
async fn create_s(host: &FakeHost, source: &str) -> Result<SnapshotCreated> {
    create(&host.ctx, req("s", source, &HashMap::new())).await
}

fn req<'a>(
    name: &'a str,
    source_volume_id: &'a str,
    parameters: &'a HashMap<String, String>,
) -> CreateSnapshot<'a> {
    CreateSnapshot {
        name,
        source_volume_id,
        parameters,
    }
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../tests/fixtures/controller/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The snapshot lvcreate, matched on everything but the creation-time tag (taken at run time).
fn expect_snapshot_lvcreate(host: &FakeHost, origin: &str, name: &str, fails: Option<&str>) {
    let lv = id_for(name);
    let origin = LvName::parse(origin).unwrap();
    let record = SnapshotRecord {
        name: name.into(),
        source_volume: csi_common::ids::VolumeId::from_lv(&origin),
        created_seconds: CLOCK.0,
        created_nanos: CLOCK.1,
    };
    let cmd = lvcreate_thin_snapshot(
        VG,
        &origin,
        &lv,
        SnapshotUse::Snapshot,
        &record.creation_tags(),
        Duration::from_secs(5),
    );
    let mut e = Expectation::of(&cmd);
    if let Some(stderr) = fails {
        e = e.fails(5, stderr);
    }
    host.expect(e);
}

#[tokio::test]
async fn cuts_a_thin_snapshot_with_its_record_and_is_idempotent_by_name() {
    let host = FakeHost::new();
    let params = HashMap::from([(
        "csi.storage.k8s.io/volumesnapshot/name".to_string(),
        "x".to_string(),
    )]);
    let snap = id_for("s1");
    let source = lv_row("csi-v-1", 64 * MIB, Some("pool"), &carve_tags("v"));
    host.expect_lvs_one(snap.as_str(), &[]);
    host.expect_lvs_one("csi-v-1", std::slice::from_ref(&source));
    host.expect_survey(10 << 30, 4 * MIB, &[pool_row(8 << 30), source.clone()]);
    expect_snapshot_lvcreate(&host, "csi-v-1", "s1", None);
    let row = snap_row(snap.as_str(), 64 * MIB, "s1", "csi-v-1");
    host.expect_lvs_one(snap.as_str(), std::slice::from_ref(&row));
    let created = create(&host.ctx, req("s1", "csi-v-1", &params))
        .await
        .unwrap();
    let SnapshotCreated::Created(s) = &created else {
        panic!("{created:?}")
    };
    assert_eq!(s.id, snap);
    assert!(s.ready());
    assert_eq!(s.to_csi().source_volume_id, "csi-v-1");

    host.expect_lvs_one(snap.as_str(), std::slice::from_ref(&row));
    let again = create(&host.ctx, req("s1", "csi-v-1", &params))
        .await
        .unwrap();
    assert!(matches!(again, SnapshotCreated::AlreadyExisted(_)));
    host.expect_lvs_one(snap.as_str(), &[row]);
    refused(
        create(&host.ctx, req("s1", "csi-w-1", &params)).await,
        Kind::AlreadyExists,
    );
    host.finish();
}

#[tokio::test]
async fn invalid_requests_never_reach_lvm() {
    let host = FakeHost::new();
    let none = HashMap::new();
    let long = "x".repeat(129);
    let bad = HashMap::from([("retention".to_string(), "1d".to_string())]);
    for r in [
        req("", "csi-v-1", &none),
        req(&long, "csi-v-1", &none),
        req("s", "", &none),
        req("s", "csi-v-1", &bad),
    ] {
        let err = create(&host.ctx, r).await.unwrap_err();
        assert_eq!(err.kind(), Kind::InvalidArgument, "{r:?}");
    }
    host.finish();
}

#[tokio::test]
async fn missing_linear_and_foreign_sources() {
    let host = FakeHost::new();
    let snap = id_for("s");
    // A source id Carve never issued, then a well-formed one that does not exist.
    host.expect_lvs_one(snap.as_str(), &[]);
    refused(create_s(&host, "vol-1").await, Kind::NotFound);
    host.expect_lvs_one(snap.as_str(), &[]);
    host.expect_lvs_one("csi-gone-1", &[]);
    refused(create_s(&host, "csi-gone-1").await, Kind::NotFound);
    // A linear source: a clear INVALID_ARGUMENT.
    host.expect_lvs_one(snap.as_str(), &[]);
    host.expect_lvs_one(
        "csi-lin-1",
        &[lv_row("csi-lin-1", 64 * MIB, None, &carve_tags("lin"))],
    );
    let err = refused(create_s(&host, "csi-lin-1").await, Kind::InvalidArgument);
    assert!(err.message().contains("thin"), "{err}");
    // The name's LV exists but is not a Carve snapshot.
    host.expect_lvs_one(
        snap.as_str(),
        &[lv_row(snap.as_str(), 64 * MIB, Some("pool"), &[])],
    );
    refused(create_s(&host, "csi-v-1").await, Kind::AlreadyExists);
    host.finish();
}

#[tokio::test]
async fn no_room_in_the_pool_is_resource_exhausted() {
    let host = FakeHost::new();
    let snap = id_for("s");
    let source = lv_row("csi-v-1", 6 << 30, Some("pool"), &carve_tags("v"));
    host.expect_lvs_one(snap.as_str(), &[]);
    host.expect_lvs_one("csi-v-1", std::slice::from_ref(&source));
    host.expect_survey(10 << 30, 4 * MIB, &[pool_row(8 << 30), source.clone()]);
    refused(create_s(&host, "csi-v-1").await, Kind::ResourceExhausted);
    // LVM's own refusal (pool above its threshold) maps the same way.
    let source = lv_row("csi-v-1", 64 * MIB, Some("pool"), &carve_tags("v"));
    host.expect_lvs_one(snap.as_str(), &[]);
    host.expect_lvs_one("csi-v-1", std::slice::from_ref(&source));
    host.expect_survey(10 << 30, 4 * MIB, &[pool_row(8 << 30), source.clone()]);
    expect_snapshot_lvcreate(
        &host,
        "csi-v-1",
        "s",
        Some(
            "  Cannot create new thin volume, free space in thin pool carvevg/pool reached threshold.\n",
        ),
    );
    refused(create_s(&host, "csi-v-1").await, Kind::ResourceExhausted);
    // A name raced in by someone else (captured lvcreate output).
    host.expect_lvs_one(snap.as_str(), &[]);
    host.expect_lvs_one("csi-v-1", std::slice::from_ref(&source));
    host.expect_survey(10 << 30, 4 * MIB, &[pool_row(8 << 30), source]);
    expect_snapshot_lvcreate(
        &host,
        "csi-v-1",
        "s",
        Some(&fixture("lvcreate-snapshot-exists.stderr")),
    );
    refused(create_s(&host, "csi-v-1").await, Kind::AlreadyExists);
    host.finish();
}
