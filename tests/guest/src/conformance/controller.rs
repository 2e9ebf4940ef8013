//! Stateless Controller cases: the capabilities, and every Controller RPC given an id Carve
//! never issued or a missing field (spec.md, each RPC's error table). None may run a tool.

use super::{ABSENT_VOLUME, FOREIGN_SNAPSHOT, FOREIGN_VOLUME, Table, rpc_types, stateless::Env};
use carvectl::{
    Client,
    request::{capacity_range, mount_capability},
};
use csi_proto::v1::{
    CapacityRange, ControllerExpandVolumeRequest, ControllerGetCapabilitiesRequest,
    ControllerGetVolumeRequest, ControllerModifyVolumeRequest, ControllerPublishVolumeRequest,
    ControllerUnpublishVolumeRequest, CreateSnapshotRequest, CreateVolumeRequest,
    DeleteSnapshotRequest, DeleteVolumeRequest, GetSnapshotRequest, ListSnapshotsRequest,
    ListVolumesRequest, ValidateVolumeCapabilitiesRequest, VolumeCapability,
    controller_service_capability::Type as CtrlCap,
    controller_service_capability::rpc::Type as CtrlRpc, volume_capability::access_mode::Mode,
};
use tonic::Code::{Aborted, InvalidArgument, NotFound, Ok, Unimplemented};

/// Runs the stateless Controller cases.
pub async fn controller_cases(t: &mut Table, client: &Client, env: &Env<'_>) {
    let mut c = client.controller.clone();
    let cap = mount_capability(Mode::SingleNodeWriter, "ext4", &[], "");
    let caps = t.code(
        "controller_get_capabilities__answers",
        Ok,
        c.controller_get_capabilities(ControllerGetCapabilitiesRequest {})
            .await,
    );
    let listed = caps.map(|r| r.into_inner().capabilities);
    let rpcs = rpc_types(listed, |c| {
        c.r#type.as_ref().map(|CtrlCap::Rpc(r)| r.r#type)
    });
    let wanted = [
        CtrlRpc::CreateDeleteVolume,
        CtrlRpc::PublishUnpublishVolume,
        CtrlRpc::ListVolumesPublishedNodes,
        CtrlRpc::ExpandVolume,
        CtrlRpc::CreateDeleteSnapshot,
        CtrlRpc::CloneVolume,
    ]
    .map(|r| (r.as_str_name(), r as i32));
    t.lists("controller_get_capabilities", &rpcs, &wanted);

    let create = |name: &str, caps: Vec<VolumeCapability>| CreateVolumeRequest {
        name: name.into(),
        volume_capabilities: caps,
        ..Default::default()
    };
    t.code(
        "create_volume__name_missing",
        InvalidArgument,
        c.create_volume(create("", vec![cap.clone()])).await,
    );
    t.code(
        "create_volume__volume_capabilities_missing",
        InvalidArgument,
        c.create_volume(create("conformance-nocap", vec![])).await,
    );
    t.code(
        "delete_volume__volume_id_missing",
        InvalidArgument,
        c.delete_volume(DeleteVolumeRequest::default()).await,
    );
    for (case, id) in [
        ("delete_volume__foreign_id_is_ok", FOREIGN_VOLUME),
        ("delete_volume__snapshot_id_is_ok", "snap-conformance-1"),
    ] {
        t.code(
            case,
            Ok,
            c.delete_volume(DeleteVolumeRequest {
                volume_id: id.into(),
                ..Default::default()
            })
            .await,
        );
    }

    let publish =
        |volume: &str, node: &str, cap: Option<VolumeCapability>| ControllerPublishVolumeRequest {
            volume_id: volume.into(),
            node_id: node.into(),
            volume_capability: cap,
            ..Default::default()
        };
    t.code(
        "controller_publish_volume__volume_id_missing",
        InvalidArgument,
        c.controller_publish_volume(publish("", env.node_id, Some(cap.clone())))
            .await,
    );
    t.code(
        "controller_publish_volume__node_id_missing",
        InvalidArgument,
        c.controller_publish_volume(publish(FOREIGN_VOLUME, "", Some(cap.clone())))
            .await,
    );
    t.code(
        "controller_publish_volume__volume_capability_missing",
        InvalidArgument,
        c.controller_publish_volume(publish(FOREIGN_VOLUME, env.node_id, None))
            .await,
    );
    t.code(
        "controller_publish_volume__volume_not_found",
        NotFound,
        c.controller_publish_volume(publish(FOREIGN_VOLUME, env.node_id, Some(cap.clone())))
            .await,
    );
    t.code(
        "controller_publish_volume__node_not_found",
        NotFound,
        c.controller_publish_volume(publish(ABSENT_VOLUME, "fake-node-id", Some(cap.clone())))
            .await,
    );

    let unpublish = |volume: &str, node: &str| ControllerUnpublishVolumeRequest {
        volume_id: volume.into(),
        node_id: node.into(),
        ..Default::default()
    };
    t.code(
        "controller_unpublish_volume__volume_id_missing",
        InvalidArgument,
        c.controller_unpublish_volume(unpublish("", env.node_id))
            .await,
    );
    t.code(
        "controller_unpublish_volume__foreign_volume_is_ok",
        Ok,
        c.controller_unpublish_volume(unpublish(FOREIGN_VOLUME, env.node_id))
            .await,
    );
    t.code(
        "controller_unpublish_volume__foreign_node_is_ok",
        Ok,
        c.controller_unpublish_volume(unpublish(ABSENT_VOLUME, "fake-node-id"))
            .await,
    );

    let validate = |volume: &str, caps: Vec<VolumeCapability>| ValidateVolumeCapabilitiesRequest {
        volume_id: volume.into(),
        volume_capabilities: caps,
        ..Default::default()
    };
    t.code(
        "validate_volume_capabilities__volume_id_missing",
        InvalidArgument,
        c.validate_volume_capabilities(validate("", vec![cap.clone()]))
            .await,
    );
    t.code(
        "validate_volume_capabilities__volume_capabilities_missing",
        InvalidArgument,
        c.validate_volume_capabilities(validate(FOREIGN_VOLUME, vec![]))
            .await,
    );
    t.code(
        "validate_volume_capabilities__volume_not_found",
        NotFound,
        c.validate_volume_capabilities(validate(FOREIGN_VOLUME, vec![cap.clone()]))
            .await,
    );

    t.code(
        "list_volumes__invalid_starting_token",
        Aborted,
        c.list_volumes(ListVolumesRequest {
            starting_token: "no such token!".into(),
            ..Default::default()
        })
        .await,
    );
    t.code(
        "controller_get_volume__volume_id_missing",
        InvalidArgument,
        c.controller_get_volume(ControllerGetVolumeRequest::default())
            .await,
    );
    t.code(
        "controller_get_volume__volume_not_found",
        NotFound,
        c.controller_get_volume(ControllerGetVolumeRequest {
            volume_id: FOREIGN_VOLUME.into(),
        })
        .await,
    );

    let expand = |volume: &str, range: Option<CapacityRange>| ControllerExpandVolumeRequest {
        volume_id: volume.into(),
        capacity_range: range,
        ..Default::default()
    };
    t.code(
        "controller_expand_volume__volume_id_missing",
        InvalidArgument,
        c.controller_expand_volume(expand("", capacity_range(1 << 30, 0)))
            .await,
    );
    t.code(
        "controller_expand_volume__capacity_range_missing",
        InvalidArgument,
        c.controller_expand_volume(expand(FOREIGN_VOLUME, None))
            .await,
    );
    t.code(
        "controller_expand_volume__volume_not_found",
        NotFound,
        c.controller_expand_volume(expand(FOREIGN_VOLUME, capacity_range(1 << 30, 0)))
            .await,
    );
    t.code(
        "controller_modify_volume__not_advertised_is_unimplemented",
        Unimplemented,
        c.controller_modify_volume(ControllerModifyVolumeRequest {
            volume_id: FOREIGN_VOLUME.into(),
            ..Default::default()
        })
        .await,
    );

    t.code(
        "create_snapshot__name_missing",
        InvalidArgument,
        c.create_snapshot(CreateSnapshotRequest {
            source_volume_id: FOREIGN_VOLUME.into(),
            ..Default::default()
        })
        .await,
    );
    t.code(
        "create_snapshot__source_volume_id_missing",
        InvalidArgument,
        c.create_snapshot(CreateSnapshotRequest {
            name: "conformance-snap".into(),
            ..Default::default()
        })
        .await,
    );
    t.code(
        "delete_snapshot__snapshot_id_missing",
        InvalidArgument,
        c.delete_snapshot(DeleteSnapshotRequest::default()).await,
    );
    t.code(
        "delete_snapshot__foreign_id_is_ok",
        Ok,
        c.delete_snapshot(DeleteSnapshotRequest {
            snapshot_id: FOREIGN_SNAPSHOT.into(),
            ..Default::default()
        })
        .await,
    );
    t.code(
        "get_snapshot__snapshot_id_missing",
        InvalidArgument,
        c.get_snapshot(GetSnapshotRequest::default()).await,
    );
    t.code(
        "get_snapshot__snapshot_not_found",
        NotFound,
        c.get_snapshot(GetSnapshotRequest {
            snapshot_id: FOREIGN_SNAPSHOT.into(),
            ..Default::default()
        })
        .await,
    );
    let listed = t.code(
        "list_snapshots__foreign_snapshot_id_lists_nothing",
        Ok,
        c.list_snapshots(ListSnapshotsRequest {
            snapshot_id: FOREIGN_SNAPSHOT.into(),
            ..Default::default()
        })
        .await,
    );
    t.check(
        "list_snapshots__foreign_snapshot_id_is_empty",
        listed.is_some_and(|l| l.into_inner().entries.is_empty()),
        "an unknown id matches nothing",
    );
    t.code(
        "list_snapshots__invalid_starting_token",
        Aborted,
        c.list_snapshots(ListSnapshotsRequest {
            starting_token: "no such token!".into(),
            ..Default::default()
        })
        .await,
    );
}
