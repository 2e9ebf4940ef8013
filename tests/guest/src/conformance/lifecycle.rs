//! Cases on real volumes (guest only): a volume's whole life in one access type, every mutating
//! RPC repeated (spec.md: "This operation MUST be idempotent"), the paths NodeGetVolumeStats
//! answers for, and what each sidecar reads from the answers (docs/csi-contract.md): capacity,
//! published nodes, node_expansion_required, ready_to_use / creation_time / size_bytes,
//! content_source of restores and clones, and the attach limit.

use super::{FOREIGN_SNAPSHOT, FOREIGN_VOLUME, Table};
use crate::Driver;
use carvectl::request::{capacity_range, from_snapshot, from_volume};
use csi_proto::v1::*;
use std::collections::HashMap;
use tonic::Code::*;

const MIB: i64 = 1 << 20;

/// What one run covers.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    /// `mount` or `block`: the suffix of every case name of this run.
    pub mode: &'a str,
    /// The capability the volume is created, published and staged with.
    pub capability: VolumeCapability,
    /// Also snapshot, restore and clone the volume, and check the attach limit (which must be
    /// 2 on the controller: the volume and the restore fit, the clone does not).
    pub sources: bool,
}

fn thin() -> HashMap<String, String> {
    HashMap::from([("thin".to_string(), "true".to_string())])
}

/// Runs one volume's life through every RPC; leaves nothing behind when every case passes.
pub async fn lifecycle(t: &mut Table, d: &Driver, run: &Run<'_>) {
    let m = run.mode;
    let case = |name: &str| format!("{name}__{m}");
    let mut c = d.controller.controller.clone();
    let mut n = d.node.node.clone();
    let cap = run.capability.clone();
    let node_id = d.lab.initiator.clone();
    let create = CreateVolumeRequest {
        name: format!("conformance-{m}"),
        capacity_range: capacity_range(64 * MIB, 0),
        volume_capabilities: vec![cap.clone()],
        parameters: thin(),
        ..Default::default()
    };
    let Some(volume) = t.code(
        &case("create_volume__new"),
        Ok,
        c.create_volume(create.clone()).await,
    ) else {
        return;
    };
    let volume = volume.into_inner().volume.unwrap_or_default();
    let id = volume.volume_id.clone();
    t.check(
        &case("create_volume__capacity_bytes"),
        volume.capacity_bytes >= 64 * MIB,
        format!("{} bytes", volume.capacity_bytes),
    );
    t.check(
        &case("create_volume__empty_has_no_content_source"),
        volume.content_source.is_none(),
        format!("{:?}", volume.content_source),
    );
    let again = t.code(
        &case("create_volume__idempotent_repeat"),
        Ok,
        c.create_volume(create.clone()).await,
    );
    t.check(
        &case("create_volume__idempotent_repeat_same_volume"),
        again.is_some_and(|a| {
            a.into_inner()
                .volume
                .is_some_and(|v| v.volume_id == id && v.capacity_bytes == volume.capacity_bytes)
        }),
        "same id and capacity",
    );
    let mut bigger = create.clone();
    bigger.capacity_range = capacity_range(128 * MIB, 128 * MIB);
    t.code(
        &case("create_volume__same_name_incompatible_capacity"),
        AlreadyExists,
        c.create_volume(bigger).await,
    );
    let validated = t.code(
        &case("validate_volume_capabilities__answers"),
        Ok,
        c.validate_volume_capabilities(ValidateVolumeCapabilitiesRequest {
            volume_id: id.clone(),
            volume_capabilities: vec![cap.clone()],
            volume_context: volume.volume_context.clone(),
            parameters: thin(),
            ..Default::default()
        })
        .await,
    );
    t.check(
        &case("validate_volume_capabilities__confirmed"),
        validated.is_some_and(|v| v.into_inner().confirmed.is_some()),
        "",
    );

    let publish = ControllerPublishVolumeRequest {
        volume_id: id.clone(),
        node_id: node_id.clone(),
        volume_capability: Some(cap.clone()),
        volume_context: volume.volume_context.clone(),
        ..Default::default()
    };
    let context = t
        .code(
            &case("controller_publish_volume__new"),
            Ok,
            c.controller_publish_volume(publish.clone()).await,
        )
        .map(|r| r.into_inner().publish_context)
        .unwrap_or_default();
    let repeat = t.code(
        &case("controller_publish_volume__idempotent_repeat"),
        Ok,
        c.controller_publish_volume(publish.clone()).await,
    );
    t.check(
        &case("controller_publish_volume__repeat_same_context"),
        repeat.is_some_and(|r| r.into_inner().publish_context == context),
        "",
    );
    let mut readonly = publish.clone();
    readonly.readonly = true;
    t.code(
        &case("controller_publish_volume__incompatible_readonly"),
        AlreadyExists,
        c.controller_publish_volume(readonly).await,
    );
    let got = t.code(
        &case("controller_get_volume__answers"),
        Ok,
        c.controller_get_volume(ControllerGetVolumeRequest {
            volume_id: id.clone(),
        })
        .await,
    );
    t.check(
        &case("controller_get_volume__published_node_ids"),
        got.is_some_and(|g| {
            g.into_inner()
                .status
                .is_some_and(|s| s.published_node_ids == [node_id.clone()])
        }),
        "external-attacher reads published_node_ids",
    );
    let listed = t.code(
        &case("list_volumes__answers"),
        Ok,
        c.list_volumes(ListVolumesRequest::default()).await,
    );
    t.check(
        &case("list_volumes__published_node_ids"),
        listed.is_some_and(|l| {
            l.into_inner().entries.iter().any(|e| {
                e.volume.as_ref().is_some_and(|v| v.volume_id == id)
                    && e.status
                        .as_ref()
                        .is_some_and(|s| s.published_node_ids == [node_id.clone()])
            })
        }),
        "",
    );

    let staging = d.staging_path(m).display().to_string();
    let target = d.target_path(m).display().to_string();
    let stage = NodeStageVolumeRequest {
        volume_id: id.clone(),
        publish_context: context.clone(),
        staging_target_path: staging.clone(),
        volume_capability: Some(cap.clone()),
        volume_context: volume.volume_context.clone(),
        ..Default::default()
    };
    t.code(
        &case("node_stage_volume__new"),
        Ok,
        n.node_stage_volume(stage.clone()).await,
    );
    t.code(
        &case("node_stage_volume__idempotent_repeat"),
        Ok,
        n.node_stage_volume(stage.clone()).await,
    );
    let node_publish = NodePublishVolumeRequest {
        volume_id: id.clone(),
        publish_context: context.clone(),
        staging_target_path: staging.clone(),
        target_path: target.clone(),
        volume_capability: Some(cap.clone()),
        volume_context: volume.volume_context.clone(),
        ..Default::default()
    };
    t.code(
        &case("node_publish_volume__new"),
        Ok,
        n.node_publish_volume(node_publish.clone()).await,
    );
    t.code(
        &case("node_publish_volume__idempotent_repeat"),
        Ok,
        n.node_publish_volume(node_publish.clone()).await,
    );

    let stats = |path: &str| NodeGetVolumeStatsRequest {
        volume_id: id.clone(),
        volume_path: path.into(),
        staging_target_path: staging.clone(),
    };
    for (name, path) in [
        ("node_get_volume_stats__staging_path", &staging),
        ("node_get_volume_stats__target_path", &target),
    ] {
        let answer = t.code(&case(name), Ok, n.node_get_volume_stats(stats(path)).await);
        t.check(
            &case(&format!("{name}_usage_and_condition")),
            answer.is_some_and(|a| {
                let a = a.into_inner();
                a.usage
                    .iter()
                    .any(|u| u.unit == volume_usage::Unit::Bytes as i32 && u.total > 0)
                    && a.volume_condition.is_some_and(|c| !c.abnormal)
            }),
            "kubelet reads usage (bytes) and volume_condition",
        );
    }
    let pods = d.dir.path().join("pods").display().to_string();
    t.code(
        &case("node_get_volume_stats__path_of_no_volume"),
        NotFound,
        n.node_get_volume_stats(stats(&pods)).await,
    );
    t.code(
        &case("node_get_volume_stats__relative_path"),
        NotFound,
        n.node_get_volume_stats(stats("some/path")).await,
    );

    let expand = ControllerExpandVolumeRequest {
        volume_id: id.clone(),
        capacity_range: capacity_range(96 * MIB, 0),
        volume_capability: Some(cap.clone()),
        ..Default::default()
    };
    let grown = t
        .code(
            &case("controller_expand_volume__grows"),
            Ok,
            c.controller_expand_volume(expand.clone()).await,
        )
        .map(|g| g.into_inner());
    t.check(
        &case("controller_expand_volume__capacity_and_node_expansion_required"),
        grown
            .as_ref()
            .is_some_and(|g| g.capacity_bytes >= 96 * MIB && g.node_expansion_required),
        format!(
            "{grown:?}: external-resizer calls NodeExpandVolume only when node_expansion_required"
        ),
    );
    t.code(
        &case("controller_expand_volume__idempotent_repeat"),
        Ok,
        c.controller_expand_volume(expand).await,
    );
    let node_expand = NodeExpandVolumeRequest {
        volume_id: id.clone(),
        volume_path: target.clone(),
        staging_target_path: staging.clone(),
        capacity_range: capacity_range(96 * MIB, 0),
        volume_capability: Some(cap.clone()),
        ..Default::default()
    };
    let grown = t.code(
        &case("node_expand_volume__grows"),
        Ok,
        n.node_expand_volume(node_expand.clone()).await,
    );
    t.check(
        &case("node_expand_volume__capacity_bytes"),
        grown.is_some_and(|g| g.into_inner().capacity_bytes >= 96 * MIB),
        "",
    );
    t.code(
        &case("node_expand_volume__idempotent_repeat"),
        Ok,
        n.node_expand_volume(node_expand).await,
    );

    if run.sources {
        sources(t, d, run, &id, &create).await;
    }

    let unpublish = NodeUnpublishVolumeRequest {
        volume_id: id.clone(),
        target_path: target.clone(),
    };
    t.code(
        &case("node_unpublish_volume__done"),
        Ok,
        n.node_unpublish_volume(unpublish.clone()).await,
    );
    t.code(
        &case("node_unpublish_volume__idempotent_repeat"),
        Ok,
        n.node_unpublish_volume(unpublish).await,
    );
    t.code(
        &case("node_get_volume_stats__unpublished_target_path"),
        NotFound,
        n.node_get_volume_stats(stats(&target)).await,
    );
    let unstage = NodeUnstageVolumeRequest {
        volume_id: id.clone(),
        staging_target_path: staging.clone(),
    };
    t.code(
        &case("node_unstage_volume__done"),
        Ok,
        n.node_unstage_volume(unstage.clone()).await,
    );
    t.code(
        &case("node_unstage_volume__idempotent_repeat"),
        Ok,
        n.node_unstage_volume(unstage).await,
    );
    let unpublish = ControllerUnpublishVolumeRequest {
        volume_id: id.clone(),
        node_id: node_id.clone(),
        ..Default::default()
    };
    t.code(
        &case("controller_unpublish_volume__done"),
        Ok,
        c.controller_unpublish_volume(unpublish.clone()).await,
    );
    t.code(
        &case("controller_unpublish_volume__idempotent_repeat"),
        Ok,
        c.controller_unpublish_volume(unpublish).await,
    );
    let delete = DeleteVolumeRequest {
        volume_id: id.clone(),
        ..Default::default()
    };
    t.code(
        &case("delete_volume__done"),
        Ok,
        c.delete_volume(delete.clone()).await,
    );
    t.code(
        &case("delete_volume__idempotent_repeat"),
        Ok,
        c.delete_volume(delete).await,
    );
    t.code(
        &case("controller_get_volume__deleted_volume_not_found"),
        NotFound,
        c.controller_get_volume(ControllerGetVolumeRequest {
            volume_id: id.clone(),
        })
        .await,
    );
}

/// Snapshot, restore and clone of volume `id` (published to the lab's node), the content
/// source of each, and the attach limit of 2.
async fn sources(t: &mut Table, d: &Driver, run: &Run<'_>, id: &str, create: &CreateVolumeRequest) {
    let m = run.mode;
    let case = |name: &str| format!("{name}__{m}");
    let mut c = d.controller.controller.clone();
    let node_id = d.lab.initiator.clone();
    let snap = CreateSnapshotRequest {
        source_volume_id: id.into(),
        name: format!("conformance-snap-{m}"),
        ..Default::default()
    };
    let snapshot = t
        .code(
            &case("create_snapshot__new"),
            Ok,
            c.create_snapshot(snap.clone()).await,
        )
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
    let again = t.code(
        &case("create_snapshot__idempotent_repeat"),
        Ok,
        c.create_snapshot(snap.clone()).await,
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
    let got = t.code(
        &case("get_snapshot__answers"),
        Ok,
        c.get_snapshot(GetSnapshotRequest {
            snapshot_id: snapshot.snapshot_id.clone(),
            ..Default::default()
        })
        .await,
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
        let fresh = t
            .code(
                &case(&format!("create_volume__{kind}")),
                Ok,
                c.create_volume(req.clone()).await,
            )
            .and_then(|r| r.into_inner().volume);
        t.check(
            &case(&format!("create_volume__{kind}_content_source")),
            fresh
                .as_ref()
                .is_some_and(|v| v.content_source.as_ref() == Some(&source)),
            format!("{fresh:?}: external-provisioner deletes a volume without it"),
        );
        let repeat = t
            .code(
                &case(&format!("create_volume__{kind}_idempotent_repeat")),
                Ok,
                c.create_volume(req).await,
            )
            .and_then(|r| r.into_inner().volume);
        t.check(
            &case(&format!("create_volume__{kind}_repeat_content_source")),
            repeat
                .as_ref()
                .is_some_and(|v| v.content_source.as_ref() == Some(&source)),
            format!("{repeat:?}"),
        );
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
    t.code(
        &case("delete_snapshot__done"),
        Ok,
        c.delete_snapshot(delete.clone()).await,
    );
    t.code(
        &case("delete_snapshot__idempotent_repeat"),
        Ok,
        c.delete_snapshot(delete).await,
    );
    t.code(
        &case("get_snapshot__deleted_snapshot_not_found"),
        NotFound,
        c.get_snapshot(GetSnapshotRequest {
            snapshot_id: snapshot.snapshot_id.clone(),
            ..Default::default()
        })
        .await,
    );
}
