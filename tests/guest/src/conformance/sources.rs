//! Lifecycle cases of a volume's sources (guest only): snapshot, restore and clone, the
//! `content_source` of each in every answer that carries a volume, sources that do not exist,
//! and the attach limit (2 on the controller: the volume and the restore fit, the clone does not).

use super::{FOREIGN_SNAPSHOT, FOREIGN_VOLUME, Table, lifecycle::Run};
use crate::Driver;
use carvectl::request::{capacity_range, from_snapshot, from_volume};
use csi_proto::v1::{
    ControllerGetVolumeRequest, ControllerPublishVolumeRequest, ControllerUnpublishVolumeRequest,
    CreateSnapshotRequest, CreateVolumeRequest, DeleteSnapshotRequest, DeleteVolumeRequest,
    GetSnapshotRequest, ListSnapshotsRequest, ListVolumesRequest, VolumeContentSource,
};
use tonic::Code::{AlreadyExists, NotFound, Ok, ResourceExhausted};

/// Snapshot, restore and clone of volume `id` (published to the lab's node, created by
/// `create`), then their removal.
pub async fn sources(
    t: &mut Table,
    d: &Driver,
    run: &Run<'_>,
    id: &str,
    create: &CreateVolumeRequest,
) {
    let m = run.mode;
    let case = |name: &str| run.case(name);
    let mut c = d.controller.controller.clone();
    let node_id = d.lab.initiator.clone();
    let snap = CreateSnapshotRequest {
        source_volume_id: id.into(),
        name: format!("conformance-snap-{m}"),
        ..Default::default()
    };
    let [snapshot, again] = t
        .twice(
            run.twice("create_snapshot", "new"),
            snap.clone(),
            async |r| c.create_snapshot(r).await,
        )
        .await;
    let snapshot = snapshot
        .and_then(|s| s.into_inner().snapshot)
        .unwrap_or_default();
    t.check(
        &case("create_snapshot__ready_to_use_creation_time_size_bytes_source"),
        snapshot.ready_to_use
            && snapshot.creation_time.is_some()
            && snapshot.size_bytes > 0
            && snapshot.source_volume_id == id,
        format!("{snapshot:?}: external-snapshotter reads all four"),
    );
    t.check(
        &case("create_snapshot__repeat_same_snapshot"),
        again.is_some_and(|a| {
            a.into_inner()
                .snapshot
                .is_some_and(|s| s.snapshot_id == snapshot.snapshot_id)
        }),
        "",
    );
    let mut other = snap.clone();
    other.source_volume_id = FOREIGN_VOLUME.into();
    t.code(
        &case("create_snapshot__same_name_other_source"),
        AlreadyExists,
        c.create_snapshot(other).await,
    );
    let missing = CreateSnapshotRequest {
        source_volume_id: FOREIGN_VOLUME.into(),
        name: format!("conformance-nosource-{m}"),
        ..Default::default()
    };
    t.code(
        &case("create_snapshot__source_volume_not_found"),
        NotFound,
        c.create_snapshot(missing).await,
    );
    let get = GetSnapshotRequest {
        snapshot_id: snapshot.snapshot_id.clone(),
        ..Default::default()
    };
    let got = t.code(
        &case("get_snapshot__answers"),
        Ok,
        c.get_snapshot(get.clone()).await,
    );
    t.check(
        &case("get_snapshot__same_snapshot"),
        got.is_some_and(|g| {
            g.into_inner()
                .snapshot
                .is_some_and(|s| s.snapshot_id == snapshot.snapshot_id && s.ready_to_use)
        }),
        "",
    );
    let listed = t.code(
        &case("list_snapshots__by_source_volume"),
        Ok,
        c.list_snapshots(ListSnapshotsRequest {
            source_volume_id: id.into(),
            ..Default::default()
        })
        .await,
    );
    t.check(
        &case("list_snapshots__by_source_volume_finds_it"),
        listed.is_some_and(|l| {
            l.into_inner().entries.iter().any(|e| {
                e.snapshot
                    .as_ref()
                    .is_some_and(|s| s.snapshot_id == snapshot.snapshot_id)
            })
        }),
        "",
    );

    let mut made = Vec::new();
    for (kind, source) in [
        ("from_snapshot", from_snapshot(&snapshot.snapshot_id)),
        ("clone", from_volume(id)),
    ] {
        let req = CreateVolumeRequest {
            name: format!("conformance-{kind}-{m}"),
            volume_content_source: Some(source.clone()),
            capacity_range: capacity_range(0, 0),
            ..create.clone()
        };
        let [fresh, repeat] = t
            .twice(
                [
                    case(&format!("create_volume__{kind}")),
                    case(&format!("create_volume__{kind}_idempotent_repeat")),
                ],
                req,
                async |r| c.create_volume(r).await,
            )
            .await
            .map(|r| r.and_then(|r| r.into_inner().volume));
        for (check, answer) in [
            ("content_source", &fresh),
            ("repeat_content_source", &repeat),
        ] {
            t.check(
                &case(&format!("create_volume__{kind}_{check}")),
                answer
                    .as_ref()
                    .is_some_and(|v| v.content_source.as_ref() == Some(&source)),
                format!("{answer:?}: external-provisioner deletes a volume without it"),
            );
        }
        if let Some(v) = fresh {
            let got = t.code(
                &case(&format!("controller_get_volume__{kind}")),
                Ok,
                c.controller_get_volume(ControllerGetVolumeRequest {
                    volume_id: v.volume_id.clone(),
                })
                .await,
            );
            t.check(
                &case(&format!("controller_get_volume__{kind}_content_source")),
                got.is_some_and(|g| {
                    g.into_inner()
                        .volume
                        .is_some_and(|v| v.content_source.as_ref() == Some(&source))
                }),
                "",
            );
            made.push((kind, v.volume_id, source));
        }
    }
    let listed = t
        .code(
            &case("list_volumes__sources"),
            Ok,
            c.list_volumes(ListVolumesRequest::default()).await,
        )
        .map(|l| l.into_inner().entries)
        .unwrap_or_default();
    for (kind, vid, source) in &made {
        t.check(
            &case(&format!("list_volumes__{kind}_content_source")),
            listed.iter().any(|e| {
                e.volume.as_ref().is_some_and(|v| {
                    &v.volume_id == vid && v.content_source.as_ref() == Some(source)
                })
            }),
            "",
        );
    }
    let missing = |source: VolumeContentSource, name: &str| CreateVolumeRequest {
        name: name.into(),
        volume_content_source: Some(source),
        ..create.clone()
    };
    t.code(
        &case("create_volume__source_snapshot_not_found"),
        NotFound,
        c.create_volume(missing(
            from_snapshot(FOREIGN_SNAPSHOT),
            "conformance-nosnap",
        ))
        .await,
    );
    t.code(
        &case("create_volume__source_volume_not_found"),
        NotFound,
        c.create_volume(missing(from_volume(FOREIGN_VOLUME), "conformance-novol"))
            .await,
    );

    // Attach limit 2: `id` is published; the restore fits, the clone is one too many.
    if let [(_, restored, _), (_, cloned, _)] = made.as_slice() {
        let publish = |v: &str| ControllerPublishVolumeRequest {
            volume_id: v.into(),
            node_id: node_id.clone(),
            volume_capability: Some(run.capability.clone()),
            ..Default::default()
        };
        t.code(
            &case("controller_publish_volume__below_max_volumes"),
            Ok,
            c.controller_publish_volume(publish(restored)).await,
        );
        t.code(
            &case("controller_publish_volume__max_volumes_attached"),
            ResourceExhausted,
            c.controller_publish_volume(publish(cloned)).await,
        );
        t.code(
            &case("controller_publish_volume__repeat_at_max_volumes"),
            Ok,
            c.controller_publish_volume(publish(restored)).await,
        );
        t.code(
            &case("controller_unpublish_volume__restore"),
            Ok,
            c.controller_unpublish_volume(ControllerUnpublishVolumeRequest {
                volume_id: restored.clone(),
                node_id: node_id.clone(),
                ..Default::default()
            })
            .await,
        );
    }
    for (kind, vid, _) in &made {
        t.code(
            &case(&format!("delete_volume__{kind}")),
            Ok,
            c.delete_volume(DeleteVolumeRequest {
                volume_id: vid.clone(),
                ..Default::default()
            })
            .await,
        );
    }
    let delete = DeleteSnapshotRequest {
        snapshot_id: snapshot.snapshot_id.clone(),
        ..Default::default()
    };
    t.twice(run.twice("delete_snapshot", "done"), delete, async |r| {
        c.delete_snapshot(r).await
    })
    .await;
    t.code(
        &case("get_snapshot__deleted_snapshot_not_found"),
        NotFound,
        c.get_snapshot(get).await,
    );
}
