//! Ids name their agent (`AGENT:VG:LV`), ids of today's form go to the default agent, ids
//! naming no configured agent are NOT_FOUND (DeleteVolume too: the volume may still exist on a
//! host this controller does not know), and snapshots and clones stay on their source's agent.

use super::{MIB, create, create_request, expect_absent, fleet, lv, zone};
use crate::support::Script;
use csi_common::ids::{LvName, VolumeId};
use csi_controller::{
    lvm::{LvRow, SnapshotUse, argv, tags::VolumeRecord, tags::snapshot::SnapshotRecord},
    ops::testing::{FakeHost, NODE1, VG, carve_tags, lv_row, pool_row},
};
use csi_proto::v1::{
    ControllerGetVolumeRequest, ControllerPublishVolumeRequest, CreateSnapshotRequest,
    DeleteSnapshotRequest, DeleteVolumeRequest, GetSnapshotRequest, ListSnapshotsRequest,
    VolumeContentSource,
    controller_server::Controller,
    volume_content_source::{Type, VolumeSource},
};
use std::time::Duration;
use tonic::{Code, Request};

async fn get(f: &super::Fleet, id: &str) -> Result<csi_proto::v1::Volume, Code> {
    let req = ControllerGetVolumeRequest {
        volume_id: id.into(),
    };
    f.svc
        .controller_get_volume(Request::new(req))
        .await
        .map(|r| r.into_inner().volume.unwrap())
        .map_err(|s| s.code())
}

async fn delete(f: &super::Fleet, id: &str) -> Result<(), Code> {
    let req = DeleteVolumeRequest {
        volume_id: id.into(),
        ..Default::default()
    };
    f.svc
        .delete_volume(Request::new(req))
        .await
        .map(drop)
        .map_err(|s| s.code())
}

#[tokio::test]
async fn ids_name_their_agent_and_old_ids_go_to_the_default_one() {
    let f = fleet(&[("a", "a", true), ("b", "b", false)]).await;
    expect_absent(&f, &["a", "b"], "v1");
    Script::new("v1").expect_create(f.host("b"));
    let on_b = create(&f.svc, create_request("v1", &[("storageHosts", "b")]))
        .await
        .unwrap();
    assert_eq!(on_b.volume_id, format!("b:{VG}:{}", lv("v1")));
    expect_absent(&f, &["a", "b"], "v2");
    Script::new("v2").expect_create(f.host("a"));
    let on_a = create(&f.svc, create_request("v2", &[("storageHosts", "a")]))
        .await
        .unwrap();
    assert_eq!(
        on_a.volume_id,
        lv("v2"),
        "the default agent issues today's ids"
    );

    // Each id reaches its own host, with the local id.
    f.host("b").expect_lookup(&Script::new("v1").row(&[]));
    assert_eq!(
        get(&f, &on_b.volume_id).await.unwrap().accessible_topology,
        [zone("b")]
    );
    let old = lv_row("csi-old-1", 8 * MIB, None, &carve_tags("old"));
    f.host("a").expect_lookup(&old);
    let got = get(&f, "csi-old-1").await.unwrap();
    assert_eq!(
        (got.volume_id.as_str(), got.accessible_topology),
        ("csi-old-1", vec![zone("a")])
    );
    Script::new("v1").expect_publish(f.host("b"));
    let publish = ControllerPublishVolumeRequest {
        volume_id: on_b.volume_id.clone(),
        node_id: NODE1.into(),
        volume_capability: Some(super::ext4()),
        ..Default::default()
    };
    let context = f
        .svc
        .controller_publish_volume(Request::new(publish))
        .await
        .unwrap();
    let target = &context.into_inner().publish_context[csi_common::contract::TARGET_IQN];
    assert!(target.ends_with(&format!(":{}", lv("v1"))), "{target}");

    // Hosts that are not configured: NOT_FOUND, for DeleteVolume too; ids Carve never issued:
    // DeleteVolume is OK (spec.md).
    for unknown in [format!("zz:{VG}:csi-x-1"), "b:othervg:csi-x-1".into()] {
        assert_eq!(
            get(&f, &unknown).await.unwrap_err(),
            Code::NotFound,
            "{unknown}"
        );
        assert_eq!(
            delete(&f, &unknown).await.unwrap_err(),
            Code::NotFound,
            "{unknown}"
        );
    }
    for foreign in ["fake-vol-id", "b:vg:csi:x", ":vg:csi-x"] {
        assert_eq!(delete(&f, foreign).await, Ok(()), "{foreign}");
    }
    assert_eq!(delete(&f, "").await.unwrap_err(), Code::InvalidArgument);
    f.host("b").expect_lvs_one(&lv("gone"), &[]);
    assert_eq!(delete(&f, &format!("b:{VG}:{}", lv("gone"))).await, Ok(()));
    f.finish();
}

#[tokio::test]
async fn without_a_default_agent_old_ids_are_not_found() {
    let f = fleet(&[("b", "b", false)]).await;
    assert_eq!(get(&f, "csi-old-1").await.unwrap_err(), Code::NotFound);
    assert_eq!(delete(&f, "csi-old-1").await.unwrap_err(), Code::NotFound);
    assert_eq!(delete(&f, "fake-vol-id").await, Ok(()));
    f.finish();
}

fn snap_row(lv: &str, name: &str, source: &str) -> LvRow {
    let record = SnapshotRecord {
        name: name.into(),
        source_volume: VolumeId::parse(source).unwrap(),
        created_seconds: 1_732_190_000,
        created_nanos: 5,
    };
    let mut row = lv_row(lv, 64 * MIB, Some("pool"), &record.creation_tags());
    row.attr = "Vwi---tz-k".into();
    row.origin = Some(source.into());
    row
}

/// What LVM does for a clone "c" of `csi-v-1` (thin, 64 MiB) on `host`, as
/// csi-controller's create_from_source tests script it.
fn expect_clone(host: &FakeHost, source: &LvRow) -> LvRow {
    let lv = LvName::for_volume("c");
    host.expect_vgs(10 << 30, 4 * MIB);
    host.expect_lvs_one(lv.as_str(), &[]);
    host.expect_lvs_one("csi-v-1", std::slice::from_ref(source));
    host.expect_survey(10 << 30, 4 * MIB, &[pool_row(8 << 30), source.clone()]);
    let record = VolumeRecord {
        name: "c".into(),
        capabilities: "mount/ext4/SINGLE_NODE_WRITER".into(),
        content_source: "volume:csi-v-1".into(),
        ..Default::default()
    };
    let origin = LvName::parse("csi-v-1").unwrap();
    host.expect(csi_common::command::Expectation::of(
        &argv::lvcreate_thin_snapshot(
            VG,
            &origin,
            &lv,
            SnapshotUse::Volume,
            &record.creation_tags(),
            Duration::from_secs(5),
        ),
    ));
    let row = lv_row(lv.as_str(), 64 * MIB, Some("pool"), &record.creation_tags());
    host.expect_lookup(&row);
    row
}

#[tokio::test]
async fn snapshots_and_clones_stay_on_their_sources_agent() {
    let f = fleet(&[("a", "a", true), ("b", "b", false)]).await;
    let source_id = format!("b:{VG}:csi-v-1");
    let snap_lv = LvName::for_snapshot("s");
    let snap = snap_row(snap_lv.as_str(), "s", "csi-v-1");
    f.host("a").expect_lvs_one(snap_lv.as_str(), &[]);
    f.host("b").expect_lookup(&snap);
    let req = CreateSnapshotRequest {
        name: "s".into(),
        source_volume_id: source_id.clone(),
        ..Default::default()
    };
    let s = super::ok(f.svc.create_snapshot(Request::new(req))).await;
    let s = s.snapshot.unwrap();
    let snap_id = format!("b:{VG}:{snap_lv}");
    assert_eq!(
        (&s.snapshot_id, &s.source_volume_id),
        (&snap_id, &source_id)
    );

    // The name "t" is a snapshot of a volume on a: reused for b's volume, ALREADY_EXISTS.
    let taken = LvName::for_snapshot("t");
    f.host("a")
        .expect_lookup(&snap_row(taken.as_str(), "t", "csi-w-1"));
    let req = CreateSnapshotRequest {
        name: "t".into(),
        source_volume_id: source_id.clone(),
        ..Default::default()
    };
    let refused = f.svc.create_snapshot(Request::new(req)).await.unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists, "{refused:?}");

    f.host("b").expect_lookup(&snap);
    let req = GetSnapshotRequest {
        snapshot_id: snap_id.clone(),
        ..Default::default()
    };
    let got = super::ok(f.svc.get_snapshot(Request::new(req))).await;
    assert_eq!(got.snapshot.unwrap().snapshot_id, snap_id);
    f.host("b").expect_lvs(std::slice::from_ref(&snap));
    let req = ListSnapshotsRequest {
        source_volume_id: source_id.clone(),
        ..Default::default()
    };
    let listed = super::ok(f.svc.list_snapshots(Request::new(req))).await;
    assert_eq!(listed.entries.len(), 1);
    let req = ListSnapshotsRequest {
        snapshot_id: format!("zz:{VG}:{snap_lv}"),
        ..Default::default()
    };
    let none = super::ok(f.svc.list_snapshots(Request::new(req))).await;
    assert!(
        none.entries.is_empty(),
        "an id naming no agent matches nothing"
    );

    // A clone of b's volume goes to b, and says its source by the id the CO knows.
    let source = lv_row("csi-v-1", 64 * MIB, Some("pool"), &carve_tags("v"));
    expect_absent(&f, &["a", "b"], "c");
    expect_clone(f.host("b"), &source);
    let clone = |params: &[(&str, &str)], from: &str| {
        let mut req = create_request("c", params);
        req.capacity_range = None;
        req.volume_content_source = Some(VolumeContentSource {
            r#type: Some(Type::Volume(VolumeSource {
                volume_id: from.into(),
            })),
        });
        req
    };
    let v = create(&f.svc, clone(&[("thin", "true")], &source_id))
        .await
        .unwrap();
    assert_eq!(v.volume_id, format!("b:{VG}:{}", lv("c")));
    let Some(Type::Volume(from)) = v.content_source.unwrap().r#type else {
        panic!("no source")
    };
    assert_eq!(from.volume_id, source_id);
    let refused = create(
        &f.svc,
        clone(&[("thin", "true"), ("storageHosts", "a")], &source_id),
    );
    assert_eq!(refused.await.unwrap_err().0, Code::InvalidArgument);
    let unknown = create(
        &f.svc,
        clone(&[("thin", "true")], &format!("zz:{VG}:csi-v-1")),
    );
    assert_eq!(unknown.await.unwrap_err().0, Code::NotFound);

    let req = DeleteSnapshotRequest {
        snapshot_id: format!("zz:{VG}:{snap_lv}"),
        ..Default::default()
    };
    let code = f
        .svc
        .delete_snapshot(Request::new(req))
        .await
        .unwrap_err()
        .code();
    assert_eq!(code, Code::NotFound);
    f.finish();
}
