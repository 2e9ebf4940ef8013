//! Stateless Node cases: NodeGetInfo (what kubelet registers), the capabilities, and every Node
//! RPC given an id Carve never issued, a volume not staged here, a path that holds no volume or a
//! missing field (spec.md, each RPC's error table). None may run a tool or create a path.

use super::{ABSENT_VOLUME, FOREIGN_VOLUME, Table, rpc_types, stateless::Env};
use carvectl::{
    Client,
    request::{capacity_range, mount_capability},
};
use csi_proto::v1::{
    NodeExpandVolumeRequest, NodeGetCapabilitiesRequest, NodeGetInfoRequest,
    NodeGetVolumeStatsRequest, NodePublishVolumeRequest, NodeStageVolumeRequest,
    NodeUnpublishVolumeRequest, NodeUnstageVolumeRequest, VolumeCapability,
    node_service_capability::Type as NodeCap, node_service_capability::rpc::Type as NodeRpc,
    volume_capability::access_mode::Mode,
};
use std::{collections::HashMap, path::Path};
use tonic::Code::{self, FailedPrecondition, InvalidArgument, NotFound, Ok};

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A publish_context for a volume that does not exist (well-formed, so only the id decides).
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

/// Runs the stateless Node cases.
pub async fn node_cases(t: &mut Table, client: &Client, env: &Env<'_>) {
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
    let listed = caps.map(|r| r.into_inner().capabilities);
    let rpcs = rpc_types(listed, |c| {
        c.r#type.as_ref().map(|NodeCap::Rpc(r)| r.r#type)
    });
    let wanted = [
        NodeRpc::StageUnstageVolume,
        NodeRpc::GetVolumeStats,
        NodeRpc::ExpandVolume,
    ]
    .map(|r| (r.as_str_name(), r as i32));
    t.lists("node_get_capabilities", &rpcs, &wanted);

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
