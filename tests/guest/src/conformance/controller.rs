//! Stateless Controller cases: the capabilities, and every Controller RPC given an id Carve
//! never issued or a missing field (spec.md, each RPC's error table). None may run a tool.

use super::{ABSENT_VOLUME, FOREIGN_SNAPSHOT, FOREIGN_VOLUME, Table, stateless::Env};
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
    controller_service_capability::rpc::Type as CtrlRpc, volume_capability::access_mode::Mode,
};
use tonic::Code::{Aborted, InvalidArgument, NotFound, Ok, Unimplemented};

/// Runs the stateless Controller cases.
pub async fn controller_cases(t: &mut Table, client: &Client, env: &Env<'_>) {
    let mut c = client.controller.clone();
    let cap = mount_capability(Mode::SingleNodeWriter, "ext4", &[], "");
    let answer = c
        .controller_get_capabilities(ControllerGetCapabilitiesRequest {})
        .await;
    let wanted = [
        CtrlRpc::CreateDeleteVolume,
        CtrlRpc::PublishUnpublishVolume,
        CtrlRpc::ListVolumesPublishedNodes,
        CtrlRpc::ExpandVolume,
        CtrlRpc::CreateDeleteSnapshot,
        CtrlRpc::CloneVolume,
    ]
    .map(|r| (r.as_str_name(), r as i32));
    t.capabilities("controller_get_capabilities", answer, &wanted);

    let create = |name: &str, caps: &[&VolumeCapability]| CreateVolumeRequest {
        name: name.into(),
        volume_capabilities: caps.iter().map(|&c| c.clone()).collect(),
        ..Default::default()
    };
    for (case, name, caps) in [
        ("create_volume__name_missing", "", &[&cap][..]),
        (
            "create_volume__volume_capabilities_missing",
            "conformance-nocap",
            &[],
        ),
    ] {
        t.code(
            case,
            InvalidArgument,
            c.create_volume(create(name, caps)).await,
        );
    }
    let delete = |id: &str| DeleteVolumeRequest {
        volume_id: id.into(),
        ..Default::default()
    };
    for (case, want, id) in [
        ("delete_volume__volume_id_missing", InvalidArgument, ""),
        ("delete_volume__foreign_id_is_ok", Ok, FOREIGN_VOLUME),
        ("delete_volume__snapshot_id_is_ok", Ok, "snap-conformance-1"),
    ] {
        t.code(case, want, c.delete_volume(delete(id)).await);
    }

    let publish =
        |volume: &str, node: &str, cap: Option<&VolumeCapability>| ControllerPublishVolumeRequest {
            volume_id: volume.into(),
            node_id: node.into(),
            volume_capability: cap.cloned(),
            ..Default::default()
        };
    for (case, want, volume, node, cap) in [
        (
            "controller_publish_volume__volume_id_missing",
            InvalidArgument,
            "",
            env.node_id,
            Some(&cap),
        ),
        (
            "controller_publish_volume__node_id_missing",
            InvalidArgument,
            FOREIGN_VOLUME,
            "",
            Some(&cap),
        ),
        (
            "controller_publish_volume__volume_capability_missing",
            InvalidArgument,
            FOREIGN_VOLUME,
            env.node_id,
            None,
        ),
        (
            "controller_publish_volume__volume_not_found",
            NotFound,
            FOREIGN_VOLUME,
            env.node_id,
            Some(&cap),
        ),
        (
            "controller_publish_volume__node_not_found",
            NotFound,
            ABSENT_VOLUME,
            "fake-node-id",
            Some(&cap),
        ),
    ] {
        t.code(
            case,
            want,
            c.controller_publish_volume(publish(volume, node, cap))
                .await,
        );
    }
    let unpublish = |volume: &str, node: &str| ControllerUnpublishVolumeRequest {
        volume_id: volume.into(),
        node_id: node.into(),
        ..Default::default()
    };
    for (case, want, volume, node) in [
        (
            "controller_unpublish_volume__volume_id_missing",
            InvalidArgument,
            "",
            env.node_id,
        ),
        (
            "controller_unpublish_volume__foreign_volume_is_ok",
            Ok,
            FOREIGN_VOLUME,
            env.node_id,
        ),
        (
            "controller_unpublish_volume__foreign_node_is_ok",
            Ok,
            ABSENT_VOLUME,
            "fake-node-id",
        ),
    ] {
        t.code(
            case,
            want,
            c.controller_unpublish_volume(unpublish(volume, node)).await,
        );
    }
    let validate = |volume: &str, caps: &[&VolumeCapability]| ValidateVolumeCapabilitiesRequest {
        volume_id: volume.into(),
        volume_capabilities: caps.iter().map(|&c| c.clone()).collect(),
        ..Default::default()
    };
    for (case, want, volume, caps) in [
        (
            "validate_volume_capabilities__volume_id_missing",
            InvalidArgument,
            "",
            &[&cap][..],
        ),
        (
            "validate_volume_capabilities__volume_capabilities_missing",
            InvalidArgument,
            FOREIGN_VOLUME,
            &[],
        ),
        (
            "validate_volume_capabilities__volume_not_found",
            NotFound,
            FOREIGN_VOLUME,
            &[&cap],
        ),
    ] {
        t.code(
            case,
            want,
            c.validate_volume_capabilities(validate(volume, caps)).await,
        );
    }

    t.code(
        "list_volumes__invalid_starting_token",
        Aborted,
        c.list_volumes(ListVolumesRequest {
            starting_token: "no such token!".into(),
            ..Default::default()
        })
        .await,
    );
    let get = |id: &str| ControllerGetVolumeRequest {
        volume_id: id.into(),
    };
    for (case, want, id) in [
        (
            "controller_get_volume__volume_id_missing",
            InvalidArgument,
            "",
        ),
        (
            "controller_get_volume__volume_not_found",
            NotFound,
            FOREIGN_VOLUME,
        ),
    ] {
        t.code(case, want, c.controller_get_volume(get(id)).await);
    }
    let gib = capacity_range(1 << 30, 0);
    let expand = |volume: &str, range: Option<CapacityRange>| ControllerExpandVolumeRequest {
        volume_id: volume.into(),
        capacity_range: range,
        ..Default::default()
    };
    for (case, want, volume, range) in [
        (
            "controller_expand_volume__volume_id_missing",
            InvalidArgument,
            "",
            gib,
        ),
        (
            "controller_expand_volume__capacity_range_missing",
            InvalidArgument,
            FOREIGN_VOLUME,
            None,
        ),
        (
            "controller_expand_volume__volume_not_found",
            NotFound,
            FOREIGN_VOLUME,
            gib,
        ),
    ] {
        t.code(
            case,
            want,
            c.controller_expand_volume(expand(volume, range)).await,
        );
    }
    t.code(
        "controller_modify_volume__not_advertised_is_unimplemented",
        Unimplemented,
        c.controller_modify_volume(ControllerModifyVolumeRequest {
            volume_id: FOREIGN_VOLUME.into(),
            ..Default::default()
        })
        .await,
    );

    for (case, name, source) in [
        ("create_snapshot__name_missing", "", FOREIGN_VOLUME),
        (
            "create_snapshot__source_volume_id_missing",
            "conformance-snap",
            "",
        ),
    ] {
        let req = CreateSnapshotRequest {
            name: name.into(),
            source_volume_id: source.into(),
            ..Default::default()
        };
        t.code(case, InvalidArgument, c.create_snapshot(req).await);
    }
    let delete_snapshot = |id: &str| DeleteSnapshotRequest {
        snapshot_id: id.into(),
        ..Default::default()
    };
    for (case, want, id) in [
        ("delete_snapshot__snapshot_id_missing", InvalidArgument, ""),
        ("delete_snapshot__foreign_id_is_ok", Ok, FOREIGN_SNAPSHOT),
    ] {
        t.code(case, want, c.delete_snapshot(delete_snapshot(id)).await);
    }
    let get_snapshot = |id: &str| GetSnapshotRequest {
        snapshot_id: id.into(),
        ..Default::default()
    };
    for (case, want, id) in [
        ("get_snapshot__snapshot_id_missing", InvalidArgument, ""),
        (
            "get_snapshot__snapshot_not_found",
            NotFound,
            FOREIGN_SNAPSHOT,
        ),
    ] {
        t.code(case, want, c.get_snapshot(get_snapshot(id)).await);
    }
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
