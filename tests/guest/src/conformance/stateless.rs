//! Cases that need no storage: every Identity RPC, the capabilities, NodeGetInfo, and each
//! Controller and Node RPC given an id Carve never issued or a missing field. None of them may
//! run a tool: an unknown id is decided from its shape alone.

use super::{ABSENT_VOLUME, FOREIGN_SNAPSHOT, FOREIGN_VOLUME, Table};
use carvectl::{
    Client,
    request::{capacity_range, mount_capability},
};
use csi_proto::v1::{
    controller_service_capability::rpc::Type as CtrlRpc,
    node_service_capability::rpc::Type as NodeRpc, plugin_capability::service::Type as Service,
    volume_capability::access_mode::Mode, *,
};
use std::{collections::HashMap, path::Path};
use tonic::Code::{self, *};

/// Where the node cases point: an existing staging directory and a target path whose parent
/// exists, as kubelet prepares them; the node id and attach limit NodeGetInfo must report.
#[derive(Debug, Clone)]
pub struct Env<'a> {
    /// The node's id (its initiator IQN).
    pub node_id: &'a str,
    /// The max_volumes_per_node NodeGetInfo must report.
    pub max_volumes: i64,
    /// An existing staging directory.
    pub staging: &'a Path,
    /// A target path whose parent exists.
    pub target: &'a Path,
    /// Whether Probe must answer (the in-process tier has no tools for it to run).
    pub probe: bool,
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn context() -> HashMap<String, String> {
    HashMap::from([
        (
            "targetIqn".into(),
            format!("iqn.2024-01.dev.carve:{FOREIGN_VOLUME}"),
        ),
        ("portals".into(), "127.0.0.1:3260".into()),
        ("lun".into(), "0".into()),
        (
            "serial".into(),
            "0123abcd-0000-4000-8000-000000000001".into(),
        ),
    ])
}

/// Runs the stateless cases against `controller` and `node` (they may be one endpoint).
pub async fn stateless(t: &mut Table, controller: &Client, node: &Client, env: &Env<'_>) {
    identity(t, controller, node, env.probe).await;
    controller_cases(t, controller, env).await;
    node_cases(t, node, env).await;
}

async fn identity(t: &mut Table, controller: &Client, node: &Client, probe: bool) {
    for (who, client) in [("controller", controller), ("node", node)] {
        let mut id = client.identity.clone();
        if let Some(info) = t.code(
            &format!("get_plugin_info__{who}"),
            Ok,
            id.get_plugin_info(GetPluginInfoRequest {}).await,
        ) {
            let info = info.into_inner();
            t.check(
                &format!("get_plugin_info__{who}_name_and_version_set"),
                !info.name.is_empty() && !info.vendor_version.is_empty(),
                format!("{info:?}"),
            );
        }
        if probe {
            let ready = t.code(
                &format!("probe__{who}"),
                Ok,
                id.probe(ProbeRequest {}).await,
            );
            t.check(
                &format!("probe__{who}_ready"),
                ready.is_some_and(|r| r.into_inner().ready != Some(false)),
                "the sidecars wait for ready",
            );
        }
    }
    let caps = t.code(
        "get_plugin_capabilities__controller_service",
        Ok,
        controller
            .identity
            .clone()
            .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
            .await,
    );
    let has_controller = caps.is_some_and(|c| {
        c.into_inner().capabilities.iter().any(|c| {
            matches!(&c.r#type, Some(plugin_capability::Type::Service(s))
                if s.r#type == Service::ControllerService as i32)
        })
    });
    t.check(
        "get_plugin_capabilities__controller_service_advertised",
        has_controller,
        "external-provisioner and external-attacher need CONTROLLER_SERVICE",
    );
}

async fn controller_cases(t: &mut Table, client: &Client, env: &Env<'_>) {
    let mut c = client.controller.clone();
    let cap = mount_capability(Mode::SingleNodeWriter, "ext4", &[], "");
    let caps = t.code(
        "controller_get_capabilities__answers",
        Ok,
        c.controller_get_capabilities(ControllerGetCapabilitiesRequest {})
            .await,
    );
    let rpcs: Vec<i32> = caps
        .map(|r| {
            r.into_inner()
                .capabilities
                .iter()
                .filter_map(|c| {
                    c.r#type
                        .as_ref()
                        .map(|controller_service_capability::Type::Rpc(r)| r.r#type)
                })
                .collect()
        })
        .unwrap_or_default();
    for (case, rpc) in [
        (
            "controller_get_capabilities__create_delete_volume",
            CtrlRpc::CreateDeleteVolume,
        ),
        (
            "controller_get_capabilities__publish_unpublish_volume",
            CtrlRpc::PublishUnpublishVolume,
        ),
        (
            "controller_get_capabilities__list_volumes_published_nodes",
            CtrlRpc::ListVolumesPublishedNodes,
        ),
        (
            "controller_get_capabilities__expand_volume",
            CtrlRpc::ExpandVolume,
        ),
        (
            "controller_get_capabilities__create_delete_snapshot",
            CtrlRpc::CreateDeleteSnapshot,
        ),
        (
            "controller_get_capabilities__clone_volume",
            CtrlRpc::CloneVolume,
        ),
    ] {
        t.check(case, rpcs.contains(&(rpc as i32)), format!("{rpcs:?}"));
    }

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

async fn node_cases(t: &mut Table, client: &Client, env: &Env<'_>) {
    let mut n = client.node.clone();
    let cap = mount_capability(Mode::SingleNodeWriter, "ext4", &[], "");
    if let Some(info) = t.code(
        "node_get_info__answers",
        Ok,
        n.node_get_info(NodeGetInfoRequest {}).await,
    ) {
        let info = info.into_inner();
        t.check(
            "node_get_info__node_id_is_the_initiator",
            info.node_id == env.node_id,
            format!("{info:?}"),
        );
        t.check(
            "node_get_info__max_volumes_per_node",
            info.max_volumes_per_node == env.max_volumes,
            format!(
                "want {}, got {}",
                env.max_volumes, info.max_volumes_per_node
            ),
        );
    }
    let caps = t.code(
        "node_get_capabilities__answers",
        Ok,
        n.node_get_capabilities(NodeGetCapabilitiesRequest {}).await,
    );
    let rpcs: Vec<i32> = caps
        .map(|r| {
            r.into_inner()
                .capabilities
                .iter()
                .filter_map(|c| {
                    c.r#type
                        .as_ref()
                        .map(|node_service_capability::Type::Rpc(r)| r.r#type)
                })
                .collect()
        })
        .unwrap_or_default();
    for (case, rpc) in [
        (
            "node_get_capabilities__stage_unstage_volume",
            NodeRpc::StageUnstageVolume,
        ),
        (
            "node_get_capabilities__get_volume_stats",
            NodeRpc::GetVolumeStats,
        ),
        (
            "node_get_capabilities__expand_volume",
            NodeRpc::ExpandVolume,
        ),
    ] {
        t.check(case, rpcs.contains(&(rpc as i32)), format!("{rpcs:?}"));
    }

    let stage =
        |volume: &str, staging: String, cap: Option<VolumeCapability>| NodeStageVolumeRequest {
            volume_id: volume.into(),
            staging_target_path: staging,
            volume_capability: cap,
            publish_context: context(),
            ..Default::default()
        };
    let staging = s(env.staging);
    let target = s(env.target);
    t.code(
        "node_stage_volume__volume_id_missing",
        InvalidArgument,
        n.node_stage_volume(stage("", staging.clone(), Some(cap.clone())))
            .await,
    );
    t.code(
        "node_stage_volume__staging_target_path_missing",
        InvalidArgument,
        n.node_stage_volume(stage(FOREIGN_VOLUME, String::new(), Some(cap.clone())))
            .await,
    );
    t.code(
        "node_stage_volume__volume_capability_missing",
        InvalidArgument,
        n.node_stage_volume(stage(FOREIGN_VOLUME, staging.clone(), None))
            .await,
    );
    t.code(
        "node_stage_volume__volume_not_found",
        NotFound,
        n.node_stage_volume(stage(FOREIGN_VOLUME, staging.clone(), Some(cap.clone())))
            .await,
    );

    let unstage = |volume: &str, staging: String| NodeUnstageVolumeRequest {
        volume_id: volume.into(),
        staging_target_path: staging,
    };
    t.code(
        "node_unstage_volume__volume_id_missing",
        InvalidArgument,
        n.node_unstage_volume(unstage("", staging.clone())).await,
    );
    t.code(
        "node_unstage_volume__staging_target_path_missing",
        InvalidArgument,
        n.node_unstage_volume(unstage(FOREIGN_VOLUME, String::new()))
            .await,
    );
    t.code(
        "node_unstage_volume__foreign_volume_not_staged_is_ok",
        Ok,
        n.node_unstage_volume(unstage(FOREIGN_VOLUME, staging.clone()))
            .await,
    );
    t.code(
        "node_unstage_volume__absent_volume_not_staged_is_ok",
        Ok,
        n.node_unstage_volume(unstage(ABSENT_VOLUME, staging.clone()))
            .await,
    );

    let publish = |volume: &str, staging: String, target: String, cap: Option<VolumeCapability>| {
        NodePublishVolumeRequest {
            volume_id: volume.into(),
            staging_target_path: staging,
            target_path: target,
            volume_capability: cap,
            publish_context: context(),
            ..Default::default()
        }
    };
    t.code(
        "node_publish_volume__volume_id_missing",
        InvalidArgument,
        n.node_publish_volume(publish(
            "",
            staging.clone(),
            target.clone(),
            Some(cap.clone()),
        ))
        .await,
    );
    t.code(
        "node_publish_volume__staging_target_path_missing",
        FailedPrecondition,
        n.node_publish_volume(publish(
            FOREIGN_VOLUME,
            String::new(),
            target.clone(),
            Some(cap.clone()),
        ))
        .await,
    );
    t.code(
        "node_publish_volume__target_path_missing",
        InvalidArgument,
        n.node_publish_volume(publish(
            FOREIGN_VOLUME,
            staging.clone(),
            String::new(),
            Some(cap.clone()),
        ))
        .await,
    );
    t.code(
        "node_publish_volume__volume_capability_missing",
        InvalidArgument,
        n.node_publish_volume(publish(
            FOREIGN_VOLUME,
            staging.clone(),
            target.clone(),
            None,
        ))
        .await,
    );
    t.code(
        "node_publish_volume__volume_not_found",
        NotFound,
        n.node_publish_volume(publish(
            FOREIGN_VOLUME,
            staging.clone(),
            target.clone(),
            Some(cap.clone()),
        ))
        .await,
    );
    t.code(
        "node_publish_volume__volume_not_staged",
        NotFound,
        n.node_publish_volume(publish(
            ABSENT_VOLUME,
            staging.clone(),
            target.clone(),
            Some(cap.clone()),
        ))
        .await,
    );

    let unpublish = |volume: &str, target: String| NodeUnpublishVolumeRequest {
        volume_id: volume.into(),
        target_path: target,
    };
    t.code(
        "node_unpublish_volume__volume_id_missing",
        InvalidArgument,
        n.node_unpublish_volume(unpublish("", target.clone())).await,
    );
    t.code(
        "node_unpublish_volume__target_path_missing",
        InvalidArgument,
        n.node_unpublish_volume(unpublish(FOREIGN_VOLUME, String::new()))
            .await,
    );
    t.code(
        "node_unpublish_volume__foreign_volume_not_published_is_ok",
        Ok,
        n.node_unpublish_volume(unpublish(FOREIGN_VOLUME, target.clone()))
            .await,
    );

    let stats = |volume: &str, path: String| NodeGetVolumeStatsRequest {
        volume_id: volume.into(),
        volume_path: path,
        staging_target_path: String::new(),
    };
    let rows: [(&str, Code, &str, String); 6] = [
        (
            "node_get_volume_stats__volume_id_missing",
            InvalidArgument,
            "",
            staging.clone(),
        ),
        (
            "node_get_volume_stats__volume_path_missing",
            InvalidArgument,
            FOREIGN_VOLUME,
            String::new(),
        ),
        (
            "node_get_volume_stats__volume_not_found",
            NotFound,
            FOREIGN_VOLUME,
            staging.clone(),
        ),
        (
            "node_get_volume_stats__volume_not_staged",
            NotFound,
            ABSENT_VOLUME,
            staging.clone(),
        ),
        (
            "node_get_volume_stats__relative_path",
            NotFound,
            ABSENT_VOLUME,
            "some/path".into(),
        ),
        (
            "node_get_volume_stats__nonexistent_path",
            NotFound,
            ABSENT_VOLUME,
            format!("{staging}/nonexistent"),
        ),
    ];
    for (case, want, volume, path) in rows {
        t.code(
            case,
            want,
            n.node_get_volume_stats(stats(volume, path)).await,
        );
    }

    let expand = |volume: &str, path: String| NodeExpandVolumeRequest {
        volume_id: volume.into(),
        volume_path: path,
        capacity_range: capacity_range(1 << 30, 0),
        ..Default::default()
    };
    let rows: [(&str, Code, &str, String); 5] = [
        (
            "node_expand_volume__volume_id_missing",
            InvalidArgument,
            "",
            staging.clone(),
        ),
        (
            "node_expand_volume__volume_path_missing",
            InvalidArgument,
            FOREIGN_VOLUME,
            String::new(),
        ),
        (
            "node_expand_volume__volume_not_found",
            NotFound,
            FOREIGN_VOLUME,
            staging.clone(),
        ),
        (
            "node_expand_volume__volume_not_staged",
            NotFound,
            ABSENT_VOLUME,
            staging.clone(),
        ),
        (
            "node_expand_volume__relative_path",
            NotFound,
            ABSENT_VOLUME,
            "some/path".into(),
        ),
    ];
    for (case, want, volume, path) in rows {
        t.code(case, want, n.node_expand_volume(expand(volume, path)).await);
    }
}
