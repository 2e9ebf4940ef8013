use super::*;
use crate::ops::testing::{FakeHost, carve_tags, lv_row};
use tonic::Request;

#[tokio::test]
async fn advertises_exactly_what_works() {
    let host = FakeHost::new();
    let svc = ControllerService::new(host.ctx.clone());
    let caps = svc
        .controller_get_capabilities(Request::new(ControllerGetCapabilitiesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .capabilities;
    let rpcs: Vec<i32> = caps
        .iter()
        .filter_map(|c| match &c.r#type {
            Some(controller_service_capability::Type::Rpc(r)) => Some(r.r#type),
            _ => None,
        })
        .collect();
    assert_eq!(
        rpcs,
        CAPABILITIES.iter().map(|r| *r as i32).collect::<Vec<_>>()
    );
    for present in [
        Rpc::ExpandVolume,
        Rpc::CreateDeleteSnapshot,
        Rpc::ListSnapshots,
        Rpc::GetSnapshot,
        Rpc::CloneVolume,
    ] {
        assert!(rpcs.contains(&(present as i32)), "{present:?}");
    }
    assert!(!rpcs.contains(&(Rpc::ModifyVolume as i32)));
    let err = svc
        .controller_modify_volume(Request::new(ControllerModifyVolumeRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
}

#[tokio::test]
async fn an_operation_in_flight_makes_the_next_one_aborted() {
    let host = FakeHost::new();
    let svc = ControllerService::new(host.ctx.clone());
    let held = svc.volumes.try_acquire("csi-v-1").unwrap();
    let req = DeleteVolumeRequest {
        volume_id: "csi-v-1".into(),
        ..Default::default()
    };
    let err = svc
        .delete_volume(Request::new(req.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Aborted);
    drop(held);
    host.expect_lvs_one("csi-v-1", &[]);
    svc.delete_volume(Request::new(req))
        .await
        .expect("runs once the guard is free");
    host.finish();
}

/// The volume CreateVolume answers for `req`.
async fn created_volume(svc: &ControllerService, req: CreateVolumeRequest) -> Volume {
    let answer = svc.create_volume(Request::new(req)).await.unwrap();
    answer.into_inner().volume.unwrap()
}

#[tokio::test]
async fn create_volume_answers_the_volume_with_its_context() {
    let host = FakeHost::new();
    let svc = ControllerService::new(host.ctx.clone());
    let lv = csi_common::ids::LvName::for_volume("v");
    host.expect_survey(
        10 << 30,
        4 << 20,
        &[lv_row(lv.as_str(), 8 << 20, None, &carve_tags("v"))],
    );
    let cap = crate::ops::capability::mount(
        "ext4",
        volume_capability::access_mode::Mode::SingleNodeWriter,
    );
    let req = CreateVolumeRequest {
        name: "v".into(),
        volume_capabilities: vec![cap],
        ..Default::default()
    };
    let volume = created_volume(&svc, req).await;
    assert_eq!(volume.volume_id, lv.as_str());
    assert_eq!(volume.capacity_bytes, 8 << 20);
    assert_eq!(
        volume.volume_context["targetIqn"],
        host.target(lv.as_str()).as_str()
    );
    assert_eq!(volume.volume_context["contentSource"], "");
    host.finish();
}

/// spec.md CreateVolume: a volume made from a source carries `content_source`, in the answer to
/// a repeated CreateVolume, in ListVolumes and in ControllerGetVolume (external-provisioner
/// deletes a new volume whose answer lacks it: pkg/controller/controller.go, Provision).
#[tokio::test]
async fn volumes_made_from_a_source_answer_their_content_source_everywhere() {
    use csi_proto::v1::volume_content_source::{SnapshotSource, Type, VolumeSource};
    let host = FakeHost::new();
    let svc = ControllerService::new(host.ctx.clone());
    let cap = crate::ops::capability::mount(
        "ext4",
        volume_capability::access_mode::Mode::SingleNodeWriter,
    );
    let restored = csi_common::ids::LvName::for_volume("r");
    let cloned = csi_common::ids::LvName::for_volume("c");
    let tags = |name: &str, source: &str| {
        crate::lvm::tags::VolumeRecord {
            name: name.into(),
            required_bytes: 0,
            capabilities: "mount/ext4/SINGLE_NODE_WRITER".into(),
            content_source: source.into(),
            published: Vec::new(),
            used: false,
            claim: Default::default(),
        }
        .creation_tags()
    };
    let restored_row = lv_row(
        restored.as_str(),
        8 << 20,
        Some("pool"),
        &tags("r", "snapshot:snap-s-1"),
    );
    let cloned_row = lv_row(
        cloned.as_str(),
        8 << 20,
        Some("pool"),
        &tags("c", "volume:csi-v-1"),
    );
    let snapshot = Some(VolumeContentSource {
        r#type: Some(Type::Snapshot(SnapshotSource {
            snapshot_id: "snap-s-1".into(),
        })),
    });
    let volume = Some(VolumeContentSource {
        r#type: Some(Type::Volume(VolumeSource {
            volume_id: "csi-v-1".into(),
        })),
    });
    for (name, row, source) in [("r", &restored_row, &snapshot), ("c", &cloned_row, &volume)] {
        host.expect_vgs(10 << 30, 4 << 20);
        host.expect_lvs_one(&row.name, std::slice::from_ref(row));
        let req = CreateVolumeRequest {
            name: name.into(),
            volume_capabilities: vec![cap.clone()],
            parameters: std::collections::HashMap::from([("thin".into(), "true".into())]),
            volume_content_source: source.clone(),
            ..Default::default()
        };
        let answer = created_volume(&svc, req).await;
        assert_eq!(
            &answer.content_source, source,
            "repeated CreateVolume {name}"
        );
    }
    host.expect_survey(
        1 << 30,
        4 << 20,
        &[restored_row.clone(), cloned_row.clone()],
    );
    let listed = svc
        .list_volumes(Request::new(ListVolumesRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .entries;
    let mut sources: Vec<_> = listed
        .into_iter()
        .map(|e| {
            let v = e.volume.unwrap();
            (v.volume_id, v.content_source)
        })
        .collect();
    sources.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want = vec![
        (restored.to_string(), snapshot.clone()),
        (cloned.to_string(), volume.clone()),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(sources, want, "ListVolumes");
    for (lv, row, source) in [
        (&restored, restored_row, snapshot),
        (&cloned, cloned_row, volume),
    ] {
        host.expect_lvs_one(lv.as_str(), &[row]);
        // ControllerGetVolume reads the volume's thin pool for its condition.
        host.expect_pool(&crate::ops::testing::pool_row(8 << 30));
        let got = svc
            .controller_get_volume(Request::new(ControllerGetVolumeRequest {
                volume_id: lv.to_string(),
            }))
            .await
            .unwrap()
            .into_inner()
            .volume
            .unwrap();
        assert_eq!(got.content_source, source, "ControllerGetVolume {lv}");
    }
    host.finish();
}

/// Every RPC naming `volume` (and ListVolumes) answers UNAVAILABLE, before any LVM or LIO work.
async fn assert_unavailable(svc: &ControllerService, volume: &str, name: &str) {
    // The status code of `rpc(Request { fields.. })`, the other fields default.
    macro_rules! code {
        ($rpc:ident($req:ident { $($field:ident: $value:expr),* })) => {
            svc.$rpc(Request::new($req { $($field: $value,)* ..Default::default() }))
                .await
                .map(drop)
                .unwrap_err()
                .code()
        };
    }
    let (id, node) = (
        || volume.to_string(),
        || crate::ops::testing::NODE1.to_string(),
    );
    // ControllerGetVolumeRequest has no field but the id: nothing to default.
    let get = ControllerGetVolumeRequest { volume_id: id() };
    let codes = [
        code!(controller_publish_volume(ControllerPublishVolumeRequest {
            volume_id: id(),
            node_id: node()
        })),
        code!(controller_unpublish_volume(
            ControllerUnpublishVolumeRequest {
                volume_id: id(),
                node_id: node()
            }
        )),
        code!(delete_volume(DeleteVolumeRequest { volume_id: id() })),
        svc.controller_get_volume(Request::new(get))
            .await
            .map(drop)
            .unwrap_err()
            .code(),
        code!(validate_volume_capabilities(
            ValidateVolumeCapabilitiesRequest { volume_id: id() }
        )),
        code!(controller_expand_volume(ControllerExpandVolumeRequest {
            volume_id: id()
        })),
        code!(create_snapshot(CreateSnapshotRequest {
            source_volume_id: id(),
            name: "snap".into()
        })),
        code!(create_volume(CreateVolumeRequest { name: name.into() })),
        code!(list_volumes(ListVolumesRequest {})),
    ];
    assert_eq!(codes, [tonic::Code::Unavailable; 9]);
}

/// While startup reconciliation runs, RPCs on volumes it has not restored yet answer
/// UNAVAILABLE (spec.md: the sidecars retry it), a new volume is created and exported, and once
/// the pass completed the same RPCs answer as usual.
#[tokio::test]
async fn volumes_not_restored_yet_are_unavailable_and_new_ones_are_created() {
    use crate::{lvm::argv, restoration::Restoration};
    use csi_common::{command::Expectation, guard::OperationGuards, ids::LvName};
    let host = FakeHost::new();
    let restoration = Restoration::default();
    restoration.expect();
    let guards = OperationGuards::new("volume");
    let svc = ControllerService::with_volume_guards(host.ctx.clone(), guards.clone())
        .with_restoration(restoration.clone());
    let a = LvName::for_volume("a");
    let tags = crate::ops::testing::published_tags("a", crate::ops::testing::NODE1);
    let row = lv_row(a.as_str(), 8 << 20, None, &tags);
    assert_unavailable(&svc, a.as_str(), "a").await;
    restoration.listed([a.as_str()]);
    assert_unavailable(&svc, a.as_str(), "a").await;

    let fresh = LvName::for_volume("fresh");
    host.expect_survey(10 << 30, 4 << 20, std::slice::from_ref(&row));
    let record = crate::lvm::tags::VolumeRecord {
        name: "fresh".into(),
        required_bytes: 8 << 20,
        capabilities: "mount/ext4/SINGLE_NODE_WRITER".into(),
        ..Default::default()
    };
    let create = argv::lvcreate(
        crate::ops::testing::VG,
        &fresh,
        8 << 20,
        &crate::lvm::Allocation::Linear,
        &record.creation_tags(),
        std::time::Duration::from_secs(5),
    );
    host.expect(Expectation::of(&create));
    let cap = crate::ops::capability::mount(
        "ext4",
        volume_capability::access_mode::Mode::SingleNodeWriter,
    );
    let created = svc
        .create_volume(Request::new(CreateVolumeRequest {
            name: "fresh".into(),
            capacity_range: Some(CapacityRange {
                required_bytes: 8 << 20,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![cap],
            ..Default::default()
        }))
        .await
        .expect("a new volume is created during reconciliation");
    assert_eq!(
        created.into_inner().volume.unwrap().volume_id,
        fresh.as_str()
    );

    host.expect_lvs(std::slice::from_ref(&row));
    host.expect_lvs_one(a.as_str(), std::slice::from_ref(&row));
    let chap = std::sync::Arc::default();
    crate::reconcile::reconcile_serving(&host.ctx, chap, &guards, &restoration, 8, None)
        .await
        .unwrap();
    assert!(restoration.ready().is_ok());
    host.expect_lvs_one(a.as_str(), std::slice::from_ref(&row));
    let got = svc
        .controller_get_volume(Request::new(ControllerGetVolumeRequest {
            volume_id: a.to_string(),
        }))
        .await
        .expect("answered once restored")
        .into_inner();
    assert_eq!(
        got.status.unwrap().published_node_ids,
        [crate::ops::testing::NODE1]
    );
    host.finish();
}
